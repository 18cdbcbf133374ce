//! `[golden]` in the controller config: the loop's **initial** settings and targets.
//!
//! They apply when the database holds no golden state yet (a new controller). From then on the
//! database is the truth: run-time changes (`meshlift golden …`, journaled with who and why)
//! survive restarts, and editing the file does not silently undo them. Example:
//!
//! ```toml
//! [golden]
//! enabled = true
//! check_interval_s = 60
//! window = "mon-fri 22:00-04:00 Europe/Berlin"
//! canary_count = 2            # or canary_nodes = ["node-a", "node-b"]
//! waves_pct = [10, 50, 100]
//! bake_s = 600
//! wave_cap = 0                # nodes per wave, all boards together (0: no cap)
//! quarantine_after = 2
//! failure_blacklist_s = 604800  # 0: a failed node stays blacklisted until removed
//!
//! [[golden.targets]]
//! board = "NXP_LS1048A_PUMA"
//! image = "2.0.0"
//! ```

use serde::Deserialize;

use super::{BadGoldenVersion, BadWindow, Canary, GoldenVersion, Reconciler, Settings, Window};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Terragraph's `golden_image_check_interval_s` (60 s).
    #[serde(default = "default_check")]
    pub check_interval_s: u64,
    /// `None`: always open.
    #[serde(default)]
    pub window: Option<String>,
    /// Named canaries; empty: the `canary_count` safest nodes.
    #[serde(default)]
    pub canary_nodes: Vec<String>,
    #[serde(default = "default_one")]
    pub canary_count: u32,
    #[serde(default = "default_waves")]
    pub waves_pct: Vec<u8>,
    #[serde(default = "default_bake")]
    pub bake_s: u64,
    #[serde(default)]
    pub wave_cap: u32,
    #[serde(default = "default_k")]
    pub quarantine_after: u32,
    #[serde(default = "default_blacklist")]
    pub failure_blacklist_s: u64,
    /// Per-batch timeout of the loop's requests.
    #[serde(default = "default_timeout")]
    pub batch_timeout_s: u64,
    #[serde(default = "default_one")]
    pub retry_limit: u32,
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
}

/// `[[golden.targets]]`: the image (a name in the controller's image store; for meshlift images
/// the name is the version) for one hardware board.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub board: String,
    pub image: String,
    /// The image's version when it differs from its name.
    #[serde(default)]
    pub version: Option<String>,
}

/// A `[golden]` section that cannot be used; the controller refuses to start with it.
#[derive(Debug, thiserror::Error)]
pub enum GoldenConfigError {
    #[error("[golden] window: {0}")]
    Window(#[from] BadWindow),
    #[error("[golden.targets]: {0}")]
    Version(#[from] BadGoldenVersion),
    #[error("[golden] waves_pct must be increasing percentages in 1..=100, got {0:?}")]
    Waves(Vec<u8>),
}

impl Default for GoldenConfig {
    fn default() -> Self {
        GoldenConfig {
            enabled: false,
            check_interval_s: default_check(),
            window: None,
            canary_nodes: Vec::new(),
            canary_count: 1,
            waves_pct: default_waves(),
            bake_s: default_bake(),
            wave_cap: 0,
            quarantine_after: default_k(),
            failure_blacklist_s: default_blacklist(),
            batch_timeout_s: default_timeout(),
            retry_limit: 1,
            targets: Vec::new(),
        }
    }
}

impl GoldenConfig {
    /// The loop as a new controller starts it.
    pub fn reconciler(&self) -> Result<Reconciler, GoldenConfigError> {
        let window = self.window.as_deref().map(str::parse::<Window>).transpose()?;
        let increasing = self.waves_pct.windows(2).all(|w| w[0] < w[1]);
        if self.waves_pct.is_empty() || !increasing || self.waves_pct.iter().any(|p| !(1..=100).contains(p)) {
            return Err(GoldenConfigError::Waves(self.waves_pct.clone()));
        }
        let settings = Settings {
            enabled: self.enabled,
            paused: false,
            check_interval_ms: self.check_interval_s.saturating_mul(1000),
            window,
            canary: if self.canary_nodes.is_empty() {
                Canary::Safest(self.canary_count.max(1))
            } else {
                Canary::Nodes(self.canary_nodes.clone())
            },
            waves_pct: self.waves_pct.clone(),
            bake_ms: self.bake_s.saturating_mul(1000),
            wave_cap: self.wave_cap,
            quarantine_k: self.quarantine_after.max(1),
            failure_blacklist_ms: (self.failure_blacklist_s > 0)
                .then(|| self.failure_blacklist_s.saturating_mul(1000)),
            batch_timeout_s: self.batch_timeout_s.max(1),
            retry_limit: self.retry_limit,
        };
        let mut r = Reconciler::new(settings);
        for t in &self.targets {
            let version = t.version.as_deref().unwrap_or(&t.image);
            GoldenVersion::parse(version)?;
            r.set_initial_target(&t.board, &t.image, version)?;
        }
        Ok(r)
    }
}

fn default_check() -> u64 {
    60
}
fn default_one() -> u32 {
    1
}
fn default_waves() -> Vec<u8> {
    vec![10, 50, 100]
}
fn default_bake() -> u64 {
    600
}
fn default_k() -> u32 {
    2
}
fn default_blacklist() -> u64 {
    7 * 24 * 3600
}
fn default_timeout() -> u64 {
    600
}
