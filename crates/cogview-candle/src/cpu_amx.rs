//! The AMX path of the bf16 product ([`crate::cpu_bf16`]): `tdpbf16ps` on 32×32 blocks of C held
//! in four tiles, with A (16 rows × 16 k-pairs) and B (16 k-pairs × 16 columns) tiles loaded
//! straight from the row-major bf16 activations and the packed weight panels.
//!
//! The block loop is written once, over a [`Tiles`] implementation: [`AmxTiles`] issues the real
//! instructions (`ldtilecfg`, `tilezero`, `tileloadd`, `tdpbf16ps`, `tilestored`, `tilerelease`
//! through `asm!`), and [`TileModel`] is a byte-for-byte Rust model of the same tile registers and
//! of `tdpbf16ps` as Intel's documentation defines it (Intel 64 and IA-32 Architectures Software
//! Developer's Manual, vol. 2, TDPBF16PS; Intel AMX chapter of vol. 1 for the tile configuration).
//! The tests run the block loop on the model everywhere, so the packing, strides and tile
//! arithmetic are verified on CPUs without AMX, and on the real tiles where the CPU has them.
//!
//! Run-time requirements: CPUID leaf 7 reports AMX-TILE and AMX-BF16, and Linux grants the tile
//! data state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`; without it the first tile
//! instruction faults).

use crate::bf16_pack::{PackedBf16, KP_ALIGN, NR};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Rows of C per block (two A tiles of 16 rows).
pub(crate) const MB: usize = 32;
/// Rows of every tile.
const TILE_ROWS: usize = 16;
/// Bytes per row of every tile (16 f32, or 16 bf16 pairs).
const TILE_COLSB: usize = 64;

/// The eight tile registers as this module uses them, all 16 rows × 64 bytes: tiles 0-3 hold C
/// (16×16 f32 each), 4-5 A (16 rows × 16 bf16 pairs), 6-7 B (16 k-pairs × 16 columns).
pub(crate) trait Tiles {
    /// Zeroes tile `T`.
    ///
    /// # Safety
    /// For [`AmxTiles`]: the tiles are configured (always true of a live `AmxTiles`).
    unsafe fn zero<const T: u8>(&mut self);
    /// Loads tile `T`'s 16 rows of 64 bytes from `p`, `p + stride`, ….
    ///
    /// # Safety
    /// Those 16 × 64 bytes are readable.
    unsafe fn load<const T: u8>(&mut self, p: *const u8, stride: usize);
    /// Stores tile `T`'s 16 rows of 64 bytes to `p`, `p + stride`, ….
    ///
    /// # Safety
    /// Those 16 × 64 bytes are writable.
    unsafe fn store<const T: u8>(&mut self, p: *mut u8, stride: usize);
    /// `tdpbf16ps tmmC, tmmA, tmmB`: C (f32) += A (bf16 pairs) · B (bf16 pairs).
    ///
    /// # Safety
    /// For [`AmxTiles`]: the tiles are configured.
    unsafe fn dp<const C: u8, const A: u8, const B: u8>(&mut self);
}

/// Whether this CPU has AMX-TILE and AMX-BF16 and the operating system lets this process use the
/// tiles (asked once).
pub(crate) fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| cpu_reports_amx_bf16() && request_permission())
}

/// CPUID.(EAX=7, ECX=0):EDX bit 22 (AMX-BF16) and bit 24 (AMX-TILE).
fn cpu_reports_amx_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid_count;
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 is read only when the maximum leaf
        // (leaf 0's EAX) reaches it.
        let edx = unsafe {
            if __cpuid_count(0, 0).eax < 7 {
                return false;
            }
            __cpuid_count(7, 0).edx
        };
        edx & (1 << 22) != 0 && edx & (1 << 24) != 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, then `ARCH_GET_XCOMP_PERM` to confirm
/// (Linux 5.16 and later; the permission is the whole process's).
fn request_permission() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        let mut mask: u64 = 0;
        // SAFETY: arch_prctl with these codes only changes (or reads into `mask`, a live u64)
        // which extended states this process may use; it touches no other memory.
        let (req, get) = unsafe {
            (
                libc::syscall(
                    libc::SYS_arch_prctl,
                    ARCH_REQ_XCOMP_PERM,
                    XFEATURE_XTILEDATA,
                ),
                libc::syscall(
                    libc::SYS_arch_prctl,
                    ARCH_GET_XCOMP_PERM,
                    &mut mask as *mut u64,
                ),
            )
        };
        req == 0 && get == 0 && mask & (1 << XFEATURE_XTILEDATA) != 0
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// The real tiles. Creating one loads the tile configuration on the current thread; dropping it
/// releases the tiles (`tilerelease`), so one lives inside one rayon task, on one thread.
#[cfg(target_arch = "x86_64")]
pub(crate) struct AmxTiles {
    /// Not Send: the configuration belongs to the thread that loaded it.
    _thread: std::marker::PhantomData<*const ()>,
}

#[cfg(target_arch = "x86_64")]
impl AmxTiles {
    /// Configures the tiles: palette 1, all eight 16 rows × 64 bytes.
    ///
    /// # Safety
    /// [`available`] returned true.
    pub(crate) unsafe fn new() -> Self {
        // The 64-byte configuration: byte 0 palette, byte 1 start row, bytes 16.. the bytes per
        // row of tiles 0-15 (u16 each), bytes 48.. the rows of tiles 0-15 (u8 each).
        let mut cfg = [0u8; 64];
        cfg[0] = 1;
        for t in 0..8 {
            cfg[16 + 2 * t..18 + 2 * t].copy_from_slice(&(TILE_COLSB as u16).to_le_bytes());
            cfg[48 + t] = TILE_ROWS as u8;
        }
        // SAFETY: the caller checked that the CPU has AMX and the OS granted the tile state;
        // `cfg` is a live 64-byte buffer, read only.
        unsafe {
            std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.as_ptr(), options(nostack, readonly));
        }
        AmxTiles {
            _thread: std::marker::PhantomData,
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for AmxTiles {
    fn drop(&mut self) {
        // SAFETY: a live AmxTiles means the tiles were configured on this thread.
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Tiles for AmxTiles {
    #[inline(always)]
    unsafe fn zero<const T: u8>(&mut self) {
        // SAFETY: configured (see the trait); no memory is touched.
        unsafe { std::arch::asm!("tilezero tmm{t}", t = const T, options(nostack, nomem)) }
    }
    #[inline(always)]
    unsafe fn load<const T: u8>(&mut self, p: *const u8, stride: usize) {
        // SAFETY: the caller guarantees the 16 rows of 64 bytes are readable.
        unsafe {
            std::arch::asm!("tileloadd tmm{t}, [{p} + {s}*1]", t = const T, p = in(reg) p,
                s = in(reg) stride, options(nostack, readonly))
        }
    }
    #[inline(always)]
    unsafe fn store<const T: u8>(&mut self, p: *mut u8, stride: usize) {
        // SAFETY: the caller guarantees the 16 rows of 64 bytes are writable.
        unsafe {
            std::arch::asm!("tilestored [{p} + {s}*1], tmm{t}", t = const T, p = in(reg) p,
                s = in(reg) stride, options(nostack))
        }
    }
    #[inline(always)]
    unsafe fn dp<const C: u8, const A: u8, const B: u8>(&mut self) {
        // SAFETY: configured; register-only.
        unsafe {
            std::arch::asm!("tdpbf16ps tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A,
                b = const B, options(nostack, nomem))
        }
    }
}

/// A Rust model of the eight tiles (16 rows × 64 bytes each) and of `tdpbf16ps`, following the
/// pseudo-code of Intel's manual: for each row m of C, k-pair k of A and column n of C,
/// `C[m][n] += A[m].bf16[2k]·B[k].bf16[2n]`, then `+= A[m].bf16[2k+1]·B[k].bf16[2n+1]`, each in
/// f32 (the manual's DAZ/FTZ handling of denormals is not modelled). Test-only.
#[cfg(test)]
#[derive(Clone)]
pub(crate) struct TileModel {
    t: [[u8; TILE_ROWS * TILE_COLSB]; 8],
}

#[cfg(test)]
impl Default for TileModel {
    fn default() -> Self {
        TileModel {
            t: [[0; TILE_ROWS * TILE_COLSB]; 8],
        }
    }
}

#[cfg(test)]
impl TileModel {
    fn word(&self, tile: u8, row: usize, i: usize) -> u32 {
        let o = row * TILE_COLSB + 4 * i;
        u32::from_le_bytes(self.t[tile as usize][o..o + 4].try_into().unwrap())
    }
}

#[cfg(test)]
impl Tiles for TileModel {
    unsafe fn zero<const T: u8>(&mut self) {
        self.t[T as usize] = [0; TILE_ROWS * TILE_COLSB];
    }
    unsafe fn load<const T: u8>(&mut self, p: *const u8, stride: usize) {
        for r in 0..TILE_ROWS {
            // SAFETY: the caller guarantees the rows are readable.
            let src = unsafe { std::slice::from_raw_parts(p.add(r * stride), TILE_COLSB) };
            self.t[T as usize][r * TILE_COLSB..(r + 1) * TILE_COLSB].copy_from_slice(src);
        }
    }
    unsafe fn store<const T: u8>(&mut self, p: *mut u8, stride: usize) {
        for r in 0..TILE_ROWS {
            let src = &self.t[T as usize][r * TILE_COLSB..(r + 1) * TILE_COLSB];
            // SAFETY: the caller guarantees the rows are writable.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p.add(r * stride), TILE_COLSB) };
        }
    }
    unsafe fn dp<const C: u8, const A: u8, const B: u8>(&mut self) {
        use crate::bf16_pack::bf16_value as f;
        for m in 0..TILE_ROWS {
            let mut tmp: [f32; 16] = std::array::from_fn(|n| f32::from_bits(self.word(C, m, n)));
            for k in 0..TILE_COLSB / 4 {
                let a = self.word(A, m, k);
                for (n, acc) in tmp.iter_mut().enumerate() {
                    let b = self.word(B, k, n);
                    *acc += f(a as u16) * f(b as u16);
                    *acc += f((a >> 16) as u16) * f((b >> 16) as u16);
                }
            }
            for (n, v) in tmp.iter().enumerate() {
                let o = m * TILE_COLSB + 4 * n;
                self.t[C as usize][o..o + 4].copy_from_slice(&v.to_bits().to_le_bytes());
            }
        }
    }
}

/// One 32×32 block of C: rows at `a` (32 rows of `kp` bf16 pairs, row-major) times panel `b`
/// (`kp` rows of [`NR`] pairs), over all of k, into `out` ([32][NR] f32).
///
/// # Safety
/// `a` is valid for 32·`kp` u32 and `b` for `kp`·NR u32; `kp` is a multiple of [`KP_ALIGN`]; the
/// tiles are usable (see [`Tiles`]).
#[inline(always)]
pub(crate) unsafe fn block<T: Tiles>(
    t: &mut T,
    a: *const u32,
    kp: usize,
    b: *const u32,
    out: &mut [f32; MB * NR],
) {
    debug_assert_eq!(kp % KP_ALIGN, 0);
    // SAFETY: every tile load reads 16 rows of 64 bytes inside the ranges the caller vouches
    // for: A rows r..r+16 (r = 0 or 16), pairs kb..kb+16 ≤ kp; B pair rows kb..kb+16, columns
    // 0..16 or 16..32 of the panel. The stores write the four 16×16 quarters of `out`.
    unsafe {
        t.zero::<0>();
        t.zero::<1>();
        t.zero::<2>();
        t.zero::<3>();
        let (sa, sb) = (kp * 4, NR * 4);
        for kb in (0..kp).step_by(KP_ALIGN) {
            t.load::<4>(a.add(kb).cast(), sa);
            t.load::<5>(a.add(TILE_ROWS * kp + kb).cast(), sa);
            t.load::<6>(b.add(kb * NR).cast(), sb);
            t.load::<7>(b.add(kb * NR + 16).cast(), sb);
            t.dp::<0, 4, 6>();
            t.dp::<1, 4, 7>();
            t.dp::<2, 5, 6>();
            t.dp::<3, 5, 7>();
        }
        let o = out.as_mut_ptr();
        t.store::<0>(o.cast(), sb);
        t.store::<1>(o.add(16).cast(), sb);
        t.store::<2>(o.add(TILE_ROWS * NR).cast(), sb);
        t.store::<3>(o.add(TILE_ROWS * NR + 16).cast(), sb);
    }
}

/// `C [m, n] = A · Wᵀ + bias` with A as bf16 pairs [m_pad, kp] (m_pad a multiple of [`MB`]),
/// each parallel task on its own tiles from `make`.
///
/// # Safety
/// The tiles `make` returns are usable (for [`AmxTiles`]: [`available`]).
pub(crate) unsafe fn gemm_tiles<T: Tiles>(
    make: impl Fn() -> T + Sync,
    a: &[u32],
    m: usize,
    w: &PackedBf16,
) -> Vec<f32> {
    let (n, kp, panels) = (w.n, w.kp, w.panels());
    let m_blocks = m.div_ceil(MB);
    assert!(
        a.len() >= m_blocks * MB * kp,
        "A is not padded to {MB} rows"
    );
    let want = 4 * rayon::current_num_threads();
    let p_chunks = want.div_ceil(m_blocks).clamp(1, panels);
    let per = panels.div_ceil(p_chunks);
    let tasks: Vec<(usize, usize)> = (0..m_blocks)
        .flat_map(|mb| (0..panels).step_by(per).map(move |p0| (mb, p0)))
        .collect();
    let mut c = vec![0f32; m * n];
    let c_ptr = c.as_mut_ptr() as usize;
    tasks.into_par_iter().for_each(|(mb, p0)| {
        let mut t = make();
        let mut acc = [0f32; MB * NR];
        let rows = (m - mb * MB).min(MB);
        for panel in p0..(p0 + per).min(panels) {
            // SAFETY: A block mb holds 32 rows of kp pairs (asserted above), panel `panel` kp·NR
            // pairs; kp is a multiple of KP_ALIGN by construction of PackedBf16; the caller
            // vouches for the tiles.
            unsafe {
                block(
                    &mut t,
                    a.as_ptr().add(mb * MB * kp),
                    kp,
                    w.data.as_ptr().add(panel * kp * NR),
                    &mut acc,
                )
            };
            let cols = (n - panel * NR).min(NR);
            let bias = &w.bias[panel * NR..panel * NR + cols];
            for r in 0..rows {
                let src = &acc[r * NR..r * NR + cols];
                for (j, (s, b)) in src.iter().zip(bias).enumerate() {
                    // SAFETY: row mb·MB + r < m and column panel·NR + j < n lie inside C; tasks
                    // own disjoint (row block, panel range) blocks, so no other thread writes here.
                    unsafe {
                        *(c_ptr as *mut f32).add((mb * MB + r) * n + panel * NR + j) = s + b;
                    }
                }
            }
        }
    });
    c
}

/// [`gemm_tiles`] on the real tiles; `None` when [`available`] is false.
#[cfg(target_arch = "x86_64")]
pub(crate) fn gemm(a: &[u32], m: usize, w: &PackedBf16) -> Option<Vec<f32>> {
    if !available() {
        return None;
    }
    // SAFETY: `available()` confirmed AMX-TILE/AMX-BF16 and the OS permission, so AmxTiles::new
    // may configure the tiles in each task.
    Some(unsafe { gemm_tiles(|| AmxTiles::new(), a, m, w) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bf16_pack::{bf16_bits, bf16_value, pack_rows};
    use crate::test_util::{bf16_check as check, bf16_reference as reference, random_values};

    #[test]
    fn the_tile_model_computes_tdpbf16ps_as_documented() {
        // One tdpbf16ps by hand: C[m][n] = c0 + Σ_k A[m][2k]·B[k][2n] + A[m][2k+1]·B[k][2n+1].
        let a: Vec<u16> = (0..16 * 32)
            .map(|i| bf16_bits(((i % 7) as f32) - 3.0))
            .collect();
        let b: Vec<u16> = (0..16 * 32)
            .map(|i| bf16_bits(((i % 5) as f32) * 0.5))
            .collect();
        let c0: Vec<f32> = (0..256).map(|i| i as f32).collect();
        let mut t = TileModel::default();
        let mut out = vec![0f32; 256];
        // SAFETY: every buffer holds 16 rows of 64 bytes at stride 64.
        unsafe {
            t.load::<0>(c0.as_ptr().cast(), 64);
            t.load::<4>(a.as_ptr().cast(), 64);
            t.load::<6>(b.as_ptr().cast(), 64);
            t.dp::<0, 4, 6>();
            t.store::<0>(out.as_mut_ptr().cast(), 64);
        }
        for m in 0..16 {
            for n in 0..16 {
                let mut want = c0[m * 16 + n] as f64;
                for k in 0..16 {
                    for h in 0..2 {
                        want += bf16_value(a[m * 32 + 2 * k + h]) as f64
                            * bf16_value(b[k * 32 + 2 * n + h]) as f64;
                    }
                }
                assert_eq!(out[m * 16 + n] as f64, want, "[{m}][{n}]");
            }
        }
    }

    fn shapes() -> Vec<(usize, usize, usize)> {
        vec![
            (1, 1, 1),
            (5, 7, 3),
            (33, 31, 65),
            (32, 64, 32),
            (47, 129, 70),
            (64, 300, 96),
        ]
    }

    #[test]
    fn the_block_loop_on_the_tile_model_matches_the_reference() {
        for (m, k, n) in shapes() {
            let x = random_values(3 + m as u64, m * k);
            let w = random_values(4 + n as u64, n * k);
            let bias = random_values(5, n);
            let packed = PackedBf16::from_f32(&w, n, k, Some(&bias));
            let a = pack_rows(&x, m, k, packed.kp, MB);
            // SAFETY: the model needs nothing of the CPU.
            let got = unsafe { gemm_tiles(TileModel::default, &a, m, &packed) };
            let want = reference(&x, m, k, &w, n, Some(&bias));
            check(
                &got,
                &want,
                &x,
                m,
                k,
                &w,
                n,
                &format!("tile model {m}x{k}x{n}"),
            );
        }
    }

    /// Runs the real AMX kernel where the CPU has it (Intel Xeon 4th generation and later); on
    /// other CPUs it checks only that the path reports itself unavailable.
    #[test]
    fn the_real_amx_kernel_matches_the_reference_where_the_cpu_has_amx() {
        if !available() {
            eprintln!("no AMX on this CPU: the AMX kernel was not executed");
            return;
        }
        for (m, k, n) in shapes() {
            let x = random_values(3 + m as u64, m * k);
            let w = random_values(4 + n as u64, n * k);
            let packed = PackedBf16::from_f32(&w, n, k, None);
            let a = pack_rows(&x, m, k, packed.kp, MB);
            let got = gemm(&a, m, &packed).expect("available");
            // The model and the hardware may differ only in rounding of denormals.
            // SAFETY: the model needs nothing of the CPU.
            let model = unsafe { gemm_tiles(TileModel::default, &a, m, &packed) };
            let want = reference(&x, m, k, &w, n, None);
            check(&got, &want, &x, m, k, &w, n, &format!("AMX {m}x{k}x{n}"));
            check(&model, &want, &x, m, k, &w, n, "model");
        }
    }
}
