//! Which CPU kernels run the matrix products: chosen at run time from what the CPU reports, with a
//! fallback chain AMX → AVX512-BF16 → AVX-512 f32 → AVX2/FMA → portable, and the environment
//! variable `COGVIEW_CPU_KERNELS` (`amx`, `avx512bf16`, `avx512`, `avx2` or `portable`) to force
//! one. A forced path this CPU lacks is reported (a warning naming the path used instead), never a
//! crash. Forcing a path also turns off every kernel of the paths above it, so that a machine with
//! AVX-512 can run the whole backend as an AVX2-only or a plain x86-64 CPU would.
//!
//! The f32 GEMM ([`crate::cpu_gemm`]) and the other AVX-512 kernels run on the first three paths
//! ([`CpuKernels::uses_avx512`]); below them the f32 products are candle's (the `gemm` crate,
//! AVX2 where the CPU has it). The bf16 GEMM ([`crate::cpu_bf16`]) has one kernel per path; the
//! decoding-step kernels ([`crate::cpu_linear`], [`crate::cached_attention`], the int8 fallback
//! of [`crate::cpu_int8`]) have an AVX-512, an AVX2/FMA and a portable build.

use std::sync::OnceLock;

/// The environment variable that forces a kernel path.
pub const ENV_VAR: &str = "COGVIEW_CPU_KERNELS";

/// A CPU kernel path, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpuKernels {
    /// Intel AMX tiles (`tdpbf16ps`): needs `amx_tile` and `amx_bf16` and the kernel's permission
    /// to use the tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`).
    Amx,
    /// AVX512-BF16 (`vdpbf16ps`): pairs of bf16 products summed into f32 lanes.
    Avx512Bf16,
    /// AVX-512F fused multiply-adds in f32 (bf16 operands widened in registers).
    Avx512,
    /// AVX2 and FMA: 256-bit fused multiply-adds in f32 (bf16 operands widened in registers), for
    /// x86-64 CPUs without AVX-512 (AMD Zen 1-3, most Intel client CPUs before 2021).
    Avx2,
    /// Plain Rust, for any CPU.
    Portable,
}

/// Why a requested kernel path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelChoiceError {
    /// The name is none of `amx`, `avx512bf16`, `avx512`, `avx2`, `portable`.
    Unknown(String),
    /// This CPU (or its operating system) lacks what the path needs.
    Unavailable(CpuKernels),
}

impl std::fmt::Display for KernelChoiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelChoiceError::Unknown(s) => write!(
                f,
                "unknown CPU kernel path {s:?} (expected amx, avx512bf16, avx512, avx2 or portable)"
            ),
            KernelChoiceError::Unavailable(k) => {
                write!(f, "this CPU cannot run the {} kernels", k.name())
            }
        }
    }
}

impl std::error::Error for KernelChoiceError {}

impl CpuKernels {
    /// Every path, best first.
    pub const ALL: [CpuKernels; 5] = [
        CpuKernels::Amx,
        CpuKernels::Avx512Bf16,
        CpuKernels::Avx512,
        CpuKernels::Avx2,
        CpuKernels::Portable,
    ];

    /// The name `COGVIEW_CPU_KERNELS` takes.
    pub fn name(self) -> &'static str {
        match self {
            CpuKernels::Amx => "amx",
            CpuKernels::Avx512Bf16 => "avx512bf16",
            CpuKernels::Avx512 => "avx512",
            CpuKernels::Avx2 => "avx2",
            CpuKernels::Portable => "portable",
        }
    }

    /// The path named `s` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, KernelChoiceError> {
        let t = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| k.name() == t)
            .ok_or_else(|| KernelChoiceError::Unknown(s.to_string()))
    }

    /// Whether this CPU can run the path (for AMX: and the operating system granted the tiles).
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                CpuKernels::Amx => crate::cpu_amx::available(),
                CpuKernels::Avx512Bf16 => {
                    std::arch::is_x86_feature_detected!("avx512f")
                        && std::arch::is_x86_feature_detected!("avx512bf16")
                }
                CpuKernels::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                CpuKernels::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                        && std::arch::is_x86_feature_detected!("f16c")
                }
                CpuKernels::Portable => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == CpuKernels::Portable
        }
    }

    /// Whether this path may use the AVX-512 kernels (the f32 GEMM, the convolutions, the
    /// decoding-step kernels' 512-bit builds): the paths from `avx512` up. A CPU with AVX-512
    /// forced to `avx2` or `portable` runs as one without it would.
    pub fn uses_avx512(self) -> bool {
        matches!(
            self,
            CpuKernels::Amx | CpuKernels::Avx512Bf16 | CpuKernels::Avx512
        )
    }

    /// The best path this CPU can run.
    pub fn best() -> Self {
        Self::ALL
            .into_iter()
            .find(|k| k.available())
            .unwrap_or(CpuKernels::Portable)
    }

    /// Every path this CPU can run, best first.
    pub fn available_paths() -> Vec<Self> {
        Self::ALL.into_iter().filter(|k| k.available()).collect()
    }

    /// The path a request names (`None` or empty: the best available), or why it cannot be used.
    pub fn resolve(request: Option<&str>) -> Result<Self, KernelChoiceError> {
        match request.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(Self::best()),
            Some(s) => {
                let k = Self::parse(s)?;
                if k.available() {
                    Ok(k)
                } else {
                    Err(KernelChoiceError::Unavailable(k))
                }
            }
        }
    }

    /// The path this process uses: `COGVIEW_CPU_KERNELS` if set and runnable, otherwise the best
    /// available (with a warning when the variable asked for something else). Decided once.
    pub fn selected() -> Self {
        static SELECTED: OnceLock<CpuKernels> = OnceLock::new();
        *SELECTED.get_or_init(|| {
            let request = std::env::var(ENV_VAR).ok();
            match Self::resolve(request.as_deref()) {
                Ok(k) => {
                    tracing::debug!(kernels = k.name(), "CPU kernel path");
                    k
                }
                Err(e) => {
                    let k = Self::best();
                    tracing::warn!("{ENV_VAR}: {e}; using {} instead", k.name());
                    k
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_requests_resolve_or_explain() {
        for k in CpuKernels::ALL {
            assert_eq!(CpuKernels::parse(k.name()), Ok(k));
        }
        assert_eq!(
            CpuKernels::parse(" AVX512BF16 "),
            Ok(CpuKernels::Avx512Bf16)
        );
        assert!(matches!(
            CpuKernels::resolve(Some("sse9")),
            Err(KernelChoiceError::Unknown(_))
        ));
        assert_eq!(CpuKernels::resolve(None), Ok(CpuKernels::best()));
        assert_eq!(CpuKernels::resolve(Some("")), Ok(CpuKernels::best()));
        assert_eq!(
            CpuKernels::resolve(Some("portable")),
            Ok(CpuKernels::Portable)
        );
        for k in CpuKernels::ALL {
            match CpuKernels::resolve(Some(k.name())) {
                Ok(got) => assert!(got == k && k.available()),
                Err(e) => {
                    assert_eq!(e, KernelChoiceError::Unavailable(k));
                    assert!(!k.available());
                    assert!(e.to_string().contains(k.name()));
                }
            }
        }
        assert!(CpuKernels::available_paths().contains(&CpuKernels::Portable));
    }

    #[test]
    fn exactly_the_paths_above_avx2_use_the_avx512_kernels() {
        let rank = |k: CpuKernels| CpuKernels::ALL.iter().position(|&p| p == k).unwrap();
        for k in CpuKernels::ALL {
            assert_eq!(
                k.uses_avx512(),
                rank(k) < rank(CpuKernels::Avx2),
                "{}",
                k.name()
            );
            // A path that may use them is only ever selected on a CPU that has them.
            #[cfg(target_arch = "x86_64")]
            if k.uses_avx512() && k.available() {
                assert!(
                    std::arch::is_x86_feature_detected!("avx512f"),
                    "{}",
                    k.name()
                );
            }
        }
        assert_eq!(CpuKernels::parse("avx2"), Ok(CpuKernels::Avx2));
    }
}
