//! The boot environment in U-Boot's own environment, through libubootenv's `fw_printenv` and
//! `fw_setenv` (Debian `libubootenv-tool`) with the `fw_env.config` the device ships.
//!
//! # How the trial boot maps onto U-Boot's boot counter
//! U-Boot's standard fallback (`CONFIG_BOOTCOUNT_LIMIT` with `CONFIG_BOOTCOUNT_ENV`): while
//! `upgrade_available=1`, every power-on increments `bootcount` and saves the environment; once
//! `bootcount > bootlimit` U-Boot runs `altbootcmd` instead of `bootcmd`. The device's boot script
//! (`configs/uboot/`) boots slot `${meshlift_boot}` from `bootcmd`, and `altbootcmd` sets
//! `meshlift_boot=${meshlift_active}`, `upgrade_available=0`, saves, and boots the old slot.
//!
//! - **Commit** ([`crate::boot::arm_trial`]) writes `meshlift_boot=<standby>`,
//!   `upgrade_available=1`, `bootcount=0` and the attempt, in one `fw_setenv`. A new image that
//!   hangs before the minion starts (kernel panic, init stuck) is reset by the hardware watchdog
//!   until U-Boot gives up on it: no software of ours needs to run for that fallback.
//! - **The minion starts on the trial slot** and the boot step consumes the trial: it writes
//!   `meshlift_boot=<active>`, `upgrade_available=0`. From then on any reboot (watchdog, power
//!   cut, failed checks) returns to the old slot, exactly as with the file backend and
//!   Terragraph's one-time testcode; the boot counter only covers the window before the minion
//!   runs, the one software cannot cover.
//! - **Confirm** writes `meshlift_active=<trial slot>`, `meshlift_boot` the same,
//!   `upgrade_available=0`, `bootcount=0`, and the slot's confirmed digest.
//! - **Failed checks** write the reason into the attempt; the reboot goes to the old slot.
//!
//! Every change is ONE `fw_setenv -s -` call: libubootenv writes the whole environment to the
//! redundant copy not in use, with a higher flag byte and a fresh CRC, so a power cut leaves
//! either the old environment or the new one, never a mix of variables.
//!
//! # Variables and their budget
//! | variable | value | bytes |
//! |---|---|---|
//! | `meshlift_active`, `meshlift_boot` | `a` or `b` | 2 × ~16 |
//! | `upgrade_available`, `bootcount` | U-Boot's own | 2 × ~20 |
//! | `meshlift_confirmed_a`, `_b` | hex SHA-256 of the image file | 2 × ~85 |
//! | `meshlift_attempt` | JSON: slot, digest, version, request id, fail reason | ≤ [`MAX_LINE`] |
//! | `meshlift_failed_0` … `_3` | JSON: the newest [`FAILED_KEPT`] failed images | 4 × ≤ [`MAX_LINE`] |
//! | `meshlift_format`, `meshlift_extra` | only when a newer minion wrote them | ≤ [`MAX_LINE`] |
//!
//! Reasons are cut to [`REASON_BYTES`], so the whole set stays under [`BUDGET`] (about 3 KiB in
//! practice): a 16 KiB (`0x4000`) environment with U-Boot's defaults (~2–6 KiB) has room. Each
//! `name=value` line stays under [`MAX_LINE`]: libubootenv 0.3.2 reads script lines of at most
//! 1023 bytes. The file backend keeps [`crate::boot_env::MAX_FAILED_IMAGES`] failed images; this
//! one the newest [`FAILED_KEPT`] (the controller keeps its own record of every outcome).

use crate::boot_env::{BootEnv, BootEnvError, Bootloader, FailedImage, TrialAttempt};
use crate::command;
use crate::durable::{is_newer_format, Extra, STATE_FORMAT};
use meshlift_protocol::{Sha256Digest, SlotId};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Longest `name=value` line written (libubootenv 0.3.2's script reader stops at 1023 bytes).
pub const MAX_LINE: usize = 1000;
/// Failed images kept in the environment.
pub const FAILED_KEPT: usize = 4;
/// Bytes of a failure reason kept in the environment (hook output can be long).
pub const REASON_BYTES: usize = 256;
/// Upper bound on all `meshlift_*` lines together; a store over it is refused.
pub const BUDGET: usize = 6 * 1024;
/// Largest `fw_printenv` output read (U-Boot environments are at most a few hundred KiB).
pub const MAX_ENV_BYTES: usize = 1 << 20;

const ACTIVE: &str = "meshlift_active";
const BOOT: &str = "meshlift_boot";
const UPGRADE_AVAILABLE: &str = "upgrade_available";
const BOOTCOUNT: &str = "bootcount";
const BOOTLIMIT: &str = "bootlimit";
const ATTEMPT: &str = "meshlift_attempt";
const FAILED_PREFIX: &str = "meshlift_failed_";
const FORMAT: &str = "meshlift_format";
const EXTRA: &str = "meshlift_extra";

fn confirmed_var(slot: SlotId) -> &'static str {
    match slot {
        SlotId::A => "meshlift_confirmed_a",
        SlotId::B => "meshlift_confirmed_b",
    }
}

/// Where the tools and their configuration are; every path can be overridden in the minion
/// config (`[boot]`), which the tests use to point at a file-backed environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UBootTools {
    /// The device's `fw_env.config` (device, offset, size of each environment copy).
    pub fw_env_config: PathBuf,
    pub fw_printenv: PathBuf,
    pub fw_setenv: PathBuf,
    /// libubootenv's `--defenv`: used only when no valid environment copy is found.
    pub default_env: Option<PathBuf>,
    /// A tool that does not answer in this time is killed (an environment lock held elsewhere).
    pub timeout: Duration,
}

impl UBootTools {
    /// The Debian tools on `PATH` with `fw_env_config`.
    pub fn new(fw_env_config: PathBuf) -> UBootTools {
        UBootTools {
            fw_env_config,
            fw_printenv: "fw_printenv".into(),
            fw_setenv: "fw_setenv".into(),
            default_env: None,
            timeout: Duration::from_secs(10),
        }
    }

    fn argv(&self, tool: &PathBuf) -> Vec<OsString> {
        let mut argv = vec![tool.into(), "-c".into(), self.fw_env_config.clone().into()];
        if let Some(def) = &self.default_env {
            argv.extend(["-f".into(), def.clone().into()]);
        }
        argv
    }
}

/// [`Bootloader`] on the U-Boot environment. See the module docs for the variables.
#[derive(Debug, Clone)]
pub struct UBootBootloader {
    tools: UBootTools,
}

impl UBootBootloader {
    pub fn new(tools: UBootTools) -> UBootBootloader {
        UBootBootloader { tools }
    }

    pub fn tools(&self) -> &UBootTools {
        &self.tools
    }

    /// Every variable, from one `fw_printenv` (one consistent copy of the environment).
    pub fn read_vars(&self) -> Result<BTreeMap<String, String>, BootEnvError> {
        let argv = self.tools.argv(&self.tools.fw_printenv);
        let out = command::run(&argv, None, self.tools.timeout, MAX_ENV_BYTES)?;
        Ok(parse_printenv(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Sets (`Some`) and deletes (`None`) variables in ONE `fw_setenv -s -`: one environment
    /// write, so all of them change or none.
    pub fn write_vars(&self, changes: &[(String, Option<String>)]) -> Result<(), BootEnvError> {
        let script = script(changes)?;
        let mut argv = self.tools.argv(&self.tools.fw_setenv);
        argv.extend(["-s".into(), "-".into()]);
        command::run(&argv, Some(script.as_bytes()), self.tools.timeout, 64 * 1024)?;
        Ok(())
    }

    fn invalid(&self, message: String) -> BootEnvError {
        BootEnvError::Invalid { path: self.tools.fw_env_config.clone(), message }
    }
}

impl Bootloader for UBootBootloader {
    fn load(&self) -> Result<Option<BootEnv>, BootEnvError> {
        let vars = self.read_vars()?;
        let env = decode(&vars).map_err(|m| self.invalid(m))?;
        if let Some(env) = &env {
            if is_newer_format(env.format) {
                return Err(BootEnvError::NewerFormat {
                    path: self.tools.fw_env_config.clone(),
                    found: env.format,
                    supported: STATE_FORMAT,
                });
            }
        }
        Ok(env)
    }

    fn store(&mut self, env: &BootEnv) -> Result<(), BootEnvError> {
        let mut changes = encode(env)?;
        // Failed-image variables beyond what this write keeps (an operator cleared them, or a
        // newer minion kept more) are deleted in the same write.
        let stale: Vec<String> = self
            .read_vars()?
            .into_keys()
            .filter(|k| k.starts_with(FAILED_PREFIX) && !changes.iter().any(|(n, _)| n == k))
            .collect();
        changes.extend(stale.into_iter().map(|k| (k, None)));
        self.write_vars(&changes)
    }
}

/// `fw_printenv` prints `name=value` per line (the first `=` separates; values may hold more).
/// A value with a newline continues on lines without `=`, which are skipped: none of ours has one.
pub fn parse_printenv(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The environment's variables as a [`BootEnv`]; `Ok(None)` when meshlift never wrote it (first
/// boot). The error text names the variable.
pub fn decode(vars: &BTreeMap<String, String>) -> Result<Option<BootEnv>, String> {
    let Some(active) = vars.get(ACTIVE) else { return Ok(None) };
    let active = slot(ACTIVE, active)?;
    let boot = vars.get(BOOT).map(|v| slot(BOOT, v)).transpose()?.unwrap_or(active);
    let number = |name: &str| vars.get(name).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
    let upgrade = number(UPGRADE_AVAILABLE) == 1;
    let (bootcount, bootlimit) = (number(BOOTCOUNT), number(BOOTLIMIT));
    // Past the limit U-Boot runs `altbootcmd`: the old slot, whatever `meshlift_boot` says.
    let given_up = bootlimit > 0 && bootcount > bootlimit;
    let trial = (upgrade && boot != active && !given_up).then_some(boot);
    let attempt: Option<TrialAttempt> = vars.get(ATTEMPT).map(|v| json(ATTEMPT, v)).transpose()?;
    let digest = |slot: SlotId| {
        let name = confirmed_var(slot);
        vars.get(name).map(|v| v.parse::<Sha256Digest>().map_err(|e| format!("{name}: {e}"))).transpose()
    };
    let mut failed: Vec<(u64, FailedImage)> = Vec::new();
    for (name, value) in vars.range(FAILED_PREFIX.to_string()..) {
        let Some(index) = name.strip_prefix(FAILED_PREFIX) else { break };
        let index = index.parse::<u64>().map_err(|_| format!("{name}: not meshlift_failed_<n>"))?;
        failed.push((index, json(name, value)?));
    }
    failed.sort_by_key(|(i, _)| *i);
    let format = match vars.get(FORMAT) {
        Some(v) => v.trim().parse::<u32>().map_err(|_| format!("{FORMAT}: not a number: {v:?}"))?,
        None => 1,
    };
    let extra: Extra = vars.get(EXTRA).map(|v| json(EXTRA, v)).transpose()?.unwrap_or_default();
    Ok(Some(BootEnv {
        format,
        active,
        trial,
        attempt,
        confirmed_a: digest(SlotId::A)?,
        confirmed_b: digest(SlotId::B)?,
        failed: failed.into_iter().map(|(_, f)| f).collect(),
        extra,
    }))
}

/// The variable writes (`None` deletes) that make the environment say `env`. Reasons are cut to
/// [`REASON_BYTES`] and only the newest [`FAILED_KEPT`] failed images are kept; anything still
/// over [`MAX_LINE`] or [`BUDGET`] is refused rather than written half.
pub fn encode(env: &BootEnv) -> Result<Vec<(String, Option<String>)>, BootEnvError> {
    let boot = env.trial.unwrap_or(env.active);
    let mut out: Vec<(String, Option<String>)> = vec![
        (ACTIVE.into(), Some(env.active.as_str().into())),
        (BOOT.into(), Some(boot.as_str().into())),
        (UPGRADE_AVAILABLE.into(), Some(if env.trial.is_some() { "1" } else { "0" }.into())),
        (BOOTCOUNT.into(), Some("0".into())),
    ];
    for slot in [SlotId::A, SlotId::B] {
        out.push((confirmed_var(slot).into(), env.confirmed(slot).map(|d| d.to_hex())));
    }
    let attempt = env.attempt.clone().map(|mut a| {
        a.fail_reason = a.fail_reason.map(|r| cut(&r, REASON_BYTES));
        compact(&a)
    });
    out.push((ATTEMPT.into(), attempt));
    let newest = env.failed.len().saturating_sub(FAILED_KEPT);
    for (i, f) in env.failed[newest..].iter().enumerate() {
        let mut f = f.clone();
        f.reason = cut(&f.reason, REASON_BYTES);
        out.push((format!("{FAILED_PREFIX}{i}"), Some(compact(&f))));
    }
    for i in env.failed.len() - newest..FAILED_KEPT {
        out.push((format!("{FAILED_PREFIX}{i}"), None));
    }
    out.push((FORMAT.into(), (env.format != 1).then(|| env.format.to_string())));
    out.push((EXTRA.into(), (!env.extra.is_empty()).then(|| compact(&env.extra))));
    let mut total = 0;
    for (name, value) in &out {
        let len = name.len() + 1 + value.as_ref().map_or(0, String::len);
        if len > MAX_LINE {
            return Err(BootEnvError::TooLarge { name: name.clone(), len, limit: MAX_LINE });
        }
        total += len;
    }
    if total > BUDGET {
        return Err(BootEnvError::TooLarge { name: "meshlift_*".into(), len: total, limit: BUDGET });
    }
    Ok(out)
}

/// libubootenv's script: `name=value` per line, `name=` deletes.
fn script(changes: &[(String, Option<String>)]) -> Result<String, BootEnvError> {
    let mut text = String::new();
    for (name, value) in changes {
        let value = value.as_deref().unwrap_or("");
        let bad = |why: &str| BootEnvError::Invalid {
            path: PathBuf::from(name),
            message: format!("cannot write U-Boot variable: {why}"),
        };
        if name.is_empty() || name.contains(['=', '\n', '\r']) || name.starts_with('#') {
            return Err(bad("bad variable name"));
        }
        if value.contains(['\n', '\r', '\0']) {
            return Err(bad("a line break or NUL in the value"));
        }
        if name.len() + 1 + value.len() > MAX_LINE {
            return Err(BootEnvError::TooLarge {
                name: name.clone(),
                len: name.len() + 1 + value.len(),
                limit: MAX_LINE,
            });
        }
        text.push_str(name);
        text.push('=');
        text.push_str(value);
        text.push('\n');
    }
    Ok(text)
}

fn slot(name: &str, value: &str) -> Result<SlotId, String> {
    match value.trim() {
        "a" | "A" => Ok(SlotId::A),
        "b" | "B" => Ok(SlotId::B),
        other => Err(format!("{name}: expected a or b, found {other:?}")),
    }
}

fn json<T: serde::de::DeserializeOwned>(name: &str, value: &str) -> Result<T, String> {
    serde_json::from_str(value).map_err(|e| format!("{name}: {e}"))
}

fn compact<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("boot environment values serialise: plain data, string keys")
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: u8) -> Sha256Digest {
        Sha256Digest([b; 32])
    }

    fn failed(i: u8, reason: &str) -> FailedImage {
        FailedImage {
            sha256: sha(i),
            version: format!("2.0.{i}"),
            upgrade_req_id: format!("req-{i}"),
            reason: reason.into(),
            at: 1_700_000_000_000 + i as u64,
            extra: Extra::new(),
        }
    }

    fn apply(vars: &mut BTreeMap<String, String>, changes: Vec<(String, Option<String>)>) {
        for (k, v) in changes {
            match v {
                Some(v) => vars.insert(k, v),
                None => vars.remove(&k),
            };
        }
    }

    #[test]
    fn a_full_environment_round_trips_and_stays_in_budget() {
        let mut env = BootEnv::factory(sha(1));
        env.trial = Some(SlotId::B);
        env.attempt = Some(TrialAttempt {
            slot: SlotId::B,
            image_sha256: sha(2),
            version: "2.0.0".into(),
            upgrade_req_id: "commit-7".into(),
            fail_reason: Some("x".repeat(5000)),
            extra: Extra::new(),
        });
        for i in 0..10 {
            env.failed.push(failed(10 + i, &"é".repeat(1000)));
        }
        env.extra.insert("from_newer".into(), serde_json::json!({"k": [1, 2]}));
        let changes = encode(&env).unwrap();
        let total: usize = changes.iter().map(|(k, v)| k.len() + 1 + v.as_ref().map_or(0, String::len)).sum();
        assert!(total < 4 * 1024, "{total} bytes");
        let mut vars = BTreeMap::new();
        apply(&mut vars, changes);
        assert_eq!(vars[UPGRADE_AVAILABLE], "1");
        assert_eq!(vars[BOOT], "b");
        let back = decode(&vars).unwrap().unwrap();
        assert_eq!(back.trial, Some(SlotId::B));
        assert_eq!(back.failed.len(), FAILED_KEPT);
        assert_eq!(back.failed[0].sha256, sha(16), "the newest are kept, oldest first");
        assert_eq!(back.failed[3].sha256, sha(19));
        assert!(back.failed[3].reason.len() <= REASON_BYTES && back.failed[3].reason.starts_with('é'));
        assert_eq!(back.attempt.unwrap().fail_reason.unwrap().len(), REASON_BYTES);
        assert_eq!(back.extra, env.extra);
        assert_eq!(back.confirmed_a, Some(sha(1)));
    }

    #[test]
    fn u_boot_giving_up_on_the_trial_reads_as_no_trial() {
        let mut vars: BTreeMap<String, String> = [
            ("meshlift_active", "a"),
            ("meshlift_boot", "b"),
            ("upgrade_available", "1"),
            ("bootlimit", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (count, trial) in [(0, true), (3, true), (4, false)] {
            vars.insert(BOOTCOUNT.into(), count.to_string());
            assert_eq!(decode(&vars).unwrap().unwrap().trial.is_some(), trial, "bootcount {count}");
        }
        assert_eq!(decode(&BTreeMap::new()).unwrap(), None, "meshlift never wrote: first boot");
        vars.insert(ACTIVE.into(), "c".into());
        assert!(decode(&vars).unwrap_err().contains("meshlift_active"));
    }

    #[test]
    fn printenv_lines_split_at_the_first_equals_and_scripts_refuse_line_breaks() {
        let vars = parse_printenv("bootcmd=run a; setenv x=1\nmeshlift_active=b\ncontinued line\n");
        assert_eq!(vars["bootcmd"], "run a; setenv x=1");
        assert_eq!(vars.len(), 2);
        assert!(script(&[("a".into(), Some("x\ny".into()))]).is_err());
        assert!(script(&[("a=b".into(), Some("x".into()))]).is_err());
        assert_eq!(script(&[("a".into(), Some("1".into())), ("b".into(), None)]).unwrap(), "a=1\nb=\n");
    }
}
