//! The official prompt styles: the text each appends to the prompt, and its stage-1 temperature.

use crate::error::{Error, Result};

/// The official prompt styles (`--style` in `cogview2_text2image.py`); each appends a Chinese suffix
/// to the prompt before `<start_of_image>`. `Mainbody` is the official default.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Style {
    /// No suffix: the prompt alone.
    None,
    /// "高清摄影 隔绝" (high-definition photo, isolated): the official default.
    #[default]
    Mainbody,
    /// "高清摄影" (high-definition photo).
    Photo,
    /// "平面风格" (flat style).
    Flat,
    /// "漫画 隔绝" (comics, isolated).
    Comics,
    /// "油画风格" (oil painting).
    Oil,
    /// "素描风格" (sketch).
    Sketch,
    /// "等距矢量图" (isometric vector art).
    Isometric,
    /// "水墨国画" (Chinese ink painting).
    Chinese,
    /// "水彩画风格" (watercolour).
    Watercolor,
}

impl Style {
    /// Every style, in the official order.
    pub const ALL: [Style; 10] = [
        Style::None,
        Style::Mainbody,
        Style::Photo,
        Style::Flat,
        Style::Comics,
        Style::Oil,
        Style::Sketch,
        Style::Isometric,
        Style::Chinese,
        Style::Watercolor,
    ];

    /// The text the official template puts between the prompt and `<start_of_image>`.
    pub fn suffix(self) -> &'static str {
        match self {
            Style::None => "",
            Style::Mainbody => " 高清摄影 隔绝",
            Style::Photo => " 高清摄影",
            Style::Flat => " 平面风格",
            Style::Comics => " 漫画 隔绝",
            Style::Oil => " 油画风格",
            Style::Sketch => " 素描风格",
            Style::Isometric => " 等距矢量图",
            Style::Chinese => " 水墨国画",
            Style::Watercolor => " 水彩画风格",
        }
    }

    /// The query text to tokenize: prompt + suffix (the generator appends `<start_of_image>`).
    pub fn query_text(self, prompt: &str) -> String {
        format!("{prompt}{}", self.suffix())
    }

    /// Stage-1 temperature of the official recipe (`temp_all_gen`).
    pub fn stage1_temperature(self) -> f32 {
        match self {
            Style::Flat | Style::Comics | Style::Sketch | Style::Isometric => 1.1,
            Style::Chinese => 1.12,
            _ => 1.15,
        }
    }

    /// The name `--style` takes (`mainbody`, `photo`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Style::None => "none",
            Style::Mainbody => "mainbody",
            Style::Photo => "photo",
            Style::Flat => "flat",
            Style::Comics => "comics",
            Style::Oil => "oil",
            Style::Sketch => "sketch",
            Style::Isometric => "isometric",
            Style::Chinese => "chinese",
            Style::Watercolor => "watercolor",
        }
    }
}

impl std::str::FromStr for Style {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Style::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Style::ALL.iter().map(|s| s.name()).collect();
                Error::invalid_input(
                    "style",
                    format!("unknown style '{s}'; use one of {}", names.join(", ")),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_parse_and_give_the_official_templates() {
        assert_eq!(
            "mainbody".parse::<Style>().unwrap().query_text("a cat"),
            "a cat 高清摄影 隔绝"
        );
        assert_eq!(Style::None.query_text("x"), "x");
        assert_eq!(Style::Chinese.stage1_temperature(), 1.12);
        assert!("nope"
            .parse::<Style>()
            .unwrap_err()
            .to_string()
            .contains("watercolor"));
    }
}
