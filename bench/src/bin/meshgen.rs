//! `meshgen street|geometric SITES OUT.json [SEED]`: write a generated mesh as a Terragraph
//! topology file (for `meshlift plan` timing and demos).

use anyhow::{bail, Context, Result};
use meshlift_bench::meshgen::{generate, MeshSpec, Shape};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 || args.len() > 4 {
        bail!("usage: meshgen street|geometric SITES OUT.json [SEED]");
    }
    let shape = match args[0].as_str() {
        "street" => Shape::StreetGrid,
        "geometric" => Shape::Geometric,
        other => bail!("unknown shape {other:?}: use street or geometric"),
    };
    let sites: usize =
        args[1].parse().with_context(|| format!("SITES must be a number, not {:?}", args[1]))?;
    let mut spec = MeshSpec::new(shape, sites);
    if let Some(seed) = args.get(3) {
        spec.seed = seed.parse().with_context(|| format!("SEED must be a number, not {seed:?}"))?;
    }
    let topology = generate(&spec);
    let text = serde_json::to_string(&topology.to_json())?;
    std::fs::write(&args[2], text).with_context(|| format!("cannot write {}", args[2]))?;
    eprintln!(
        "wrote {}: {} sites, {} nodes, {} links",
        args[2],
        topology.sites.len(),
        topology.nodes.len(),
        topology.links.len()
    );
    Ok(())
}
