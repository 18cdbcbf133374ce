//! A stand-in for `meshlift-minion` in meshsim's own tests: a hardware/test fake, not a minion.
//!
//! `meshsim-fake-node --config <file.toml>` reads `name` and `data_dir`, appends a line to
//! `<data_dir>/boots.log`, prints a greeting to stdout, and then obeys `<data_dir>/command`
//! (polled every 10 ms, removed once read):
//! - `reboot` → exit 10 (reboot requested); `crash` → exit 3;
//! - `spawn` → start a `sleep 600` child and write its pid to `<data_dir>/grandchild.pid`;
//! - `flash <bytes>` → write `<data_dir>/slots/b.img` 4 KiB every 10 ms up to `<bytes>`.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Deserialize)]
struct Config {
    name: String,
    data_dir: PathBuf,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let config_path = match args.as_slice() {
        [_, flag, path] if flag == "--config" => PathBuf::from(path),
        _ => bail!("usage: meshsim-fake-node --config <file.toml>"),
    };
    let text = std::fs::read_to_string(&config_path).with_context(|| format!("{}", config_path.display()))?;
    let config: Config = toml::from_str(&text).context("config")?;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let mut boots = OpenOptions::new().create(true).append(true).open(config.data_dir.join("boots.log"))?;
    writeln!(boots, "boot {now_ms}")?;
    println!("fake node {} booted", config.name);

    let command_path = config.data_dir.join("command");
    let mut children = Vec::new();
    loop {
        if let Ok(command) = std::fs::read_to_string(&command_path) {
            std::fs::remove_file(&command_path)?;
            let command = command.trim();
            match command.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["reboot"] => std::process::exit(10),
                ["crash"] => std::process::exit(3),
                ["spawn"] => {
                    let child = std::process::Command::new("sleep").arg("600").spawn()?;
                    std::fs::write(config.data_dir.join("grandchild.pid"), child.id().to_string())?;
                    children.push(child);
                }
                ["flash", bytes] => flash(&config.data_dir, bytes.parse()?)?,
                _ => eprintln!("unknown command {command:?}"),
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn flash(data_dir: &Path, bytes: usize) -> Result<()> {
    let slots = data_dir.join("slots");
    std::fs::create_dir_all(&slots)?;
    let mut file = std::fs::File::create(slots.join("b.img"))?;
    let chunk = [0x5au8; 4096];
    let mut written = 0;
    while written < bytes {
        let n = chunk.len().min(bytes - written);
        file.write_all(&chunk[..n])?;
        file.flush()?;
        written += n;
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
