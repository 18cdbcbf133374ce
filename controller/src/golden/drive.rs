//! The glue between the loop and the engine, used by the controller's shell (`server.rs`): it
//! feeds the [`Reconciler`] what the engine knows, submits the loop's requests through
//! `Engine::handle_operator` (the operator's path), journals the loop's lines in the engine's
//! journal, and writes the loop's state to the engine's store.
//!
//! No clock or socket here either: `now` comes from the shell, and every write goes through the
//! engine (`Engine::save_golden`), so the loop's state reaches the store in the same `Persist`
//! as the engine's changes of that input. The shell passes the store for reads only.

use meshlift_protocol::{Ack, GoldenCmd, GoldenReq, GoldenShow, Message, Operator};

use super::{FleetView, GoldenAction, GoldenConfig, GoldenConfigError, GoldenState, ImageFacts, Reconciler};
use crate::engine::Engine;
use crate::metrics::Metrics;

/// Why the loop could not be started.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] GoldenConfigError),
    #[error("golden state in the database: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The loop as it stood in the store (`stored`: the golden row of the start-up snapshot), or,
/// for a store without golden state, as the config starts it.
pub fn open(stored: Option<&str>, cfg: &GoldenConfig) -> Result<Reconciler, OpenError> {
    let from_config = cfg.reconciler()?;
    match stored {
        Some(body) => {
            let state: GoldenState = crate::store::from_json("golden", body)?;
            tracing::info!(
                targets = state.targets.len(),
                in_flight = state.in_flight.len(),
                "golden-image loop resumed from the database"
            );
            Ok(Reconciler::from_state(state))
        }
        None => Ok(from_config),
    }
}

/// One turn of the loop: judge the loop's requests that finished, then tick it. Cheap when the
/// loop has nothing to do (no target): the fleet view is not even built.
pub fn turn(
    engine: &mut Engine,
    golden: &mut Reconciler,
    store: Option<&crate::store::Store>,
    now: u64,
) -> Option<FleetView> {
    let finished: Vec<String> = golden
        .state()
        .in_flight
        .keys()
        .map(String::as_str)
        .chain(golden.restore_in_flight())
        .filter(|id| {
            engine.finished_requests().any(|f| f.request_id == *id)
                // Ours, and the engine has nothing running or queued: it finished (while the
                // controller was down, or beyond the finished requests kept in memory).
                || (engine.is_idle() && engine.current_request_id() != Some(*id))
        })
        .map(str::to_string)
        .collect();
    for id in finished {
        let outcomes = match engine.finished_outcomes(&id) {
            Some(o) => o.to_vec(),
            None => store.and_then(|s| s.outcomes(&id).ok()).unwrap_or_default(),
        };
        let actions = golden.handle_request_finished(&id, &outcomes, now);
        apply(engine, golden, actions, now);
    }
    let view = fleet(engine, golden, now);
    let actions = golden.handle_tick(&view, engine.is_idle(), now);
    apply(engine, golden, actions, now);
    persist(engine, golden, now);
    Some(view)
}

/// The fleet as the loop sees it; empty (and not built) while the loop has nothing to watch.
pub fn fleet(engine: &Engine, golden: &Reconciler, now: u64) -> FleetView {
    let s = golden.state();
    if s.targets.is_empty() && s.rollouts.is_empty() && s.blacklist.is_empty() && s.restore.is_none() {
        FleetView::default()
    } else {
        engine.golden_fleet(now)
    }
}

/// An operator's `meshlift golden …` (role already checked by the shell).
pub fn command(engine: &mut Engine, golden: &mut Reconciler, req: GoldenReq, now: u64) -> Ack {
    let GoldenReq { mut cmd, operator } = req;
    let what = format!("{cmd:?}");
    // `latest`/`earliest` (maybe for the target's board) become the image they select.
    if let GoldenCmd::SetTarget { board, image } = &mut cmd {
        match engine.resolve_image(image, board.as_deref()) {
            Ok(img) => *image = img.name.clone(),
            Err(e) if crate::catalog::Selector::parse(image).is_some() => {
                engine.journal_command(&operator, format!("golden: refused {what}: {e}"), now);
                return Ack::refused(e.to_string());
            }
            Err(_) => {}
        }
    }
    let images: Vec<ImageFacts> = engine
        .images()
        .map(|i| ImageFacts {
            name: i.name.clone(),
            version: i.version.clone(),
            boards: i.hardware_board_ids.clone(),
        })
        .collect();
    let topology = engine.topology().clone();
    let result = golden.handle_command(
        cmd,
        &operator,
        |name| images.iter().find(|i| i.name == name).cloned(),
        |node| topology.node(node).is_some(),
        now,
    );
    match result {
        Ok((msg, actions)) => {
            apply(engine, golden, actions, now);
            persist(engine, golden, now);
            Ack::ok(msg)
        }
        Err(e) => {
            engine.journal_command(&operator, format!("golden: refused {what}: {e}"), now);
            Ack::refused(e.to_string())
        }
    }
}

/// `meshlift upgrade … --set-golden`: the same as `golden set` with no board, journaled as the
/// operator's.
pub fn set_golden_after_upgrade(
    engine: &mut Engine,
    golden: &mut Reconciler,
    image: &str,
    operator: Operator,
    now: u64,
) -> Ack {
    command(
        engine,
        golden,
        GoldenReq { cmd: GoldenCmd::SetTarget { board: None, image: image.to_string() }, operator },
        now,
    )
}

/// `meshlift golden show`.
pub fn show(engine: &Engine, golden: &Reconciler, now: u64) -> GoldenShow {
    golden.show(&engine.golden_fleet(now), now)
}

/// The loop's gauges, from its view of `fleet`.
pub fn update_metrics(m: &Metrics, golden: &Reconciler, fleet: &FleetView, now: u64) {
    let g = &m.golden;
    let view = golden.show(fleet, now);
    g.enabled.set(view.enabled as i64);
    g.paused.set(view.paused as i64);
    g.nodes_behind.reset();
    g.state.reset();
    g.current_wave.reset();
    g.quarantined.reset();
    for b in &view.boards {
        g.nodes_behind.with_label_values(&[b.board.as_str()]).set(i64::from(b.behind));
        g.state.with_label_values(&[b.board.as_str(), b.state.as_str()]).set(1);
        g.current_wave.with_label_values(&[b.board.as_str()]).set(b.waves.len() as i64);
    }
    for q in &view.quarantined {
        g.quarantined.with_label_values(&[q.version.as_str()]).set(1);
    }
    g.last_run.set(view.last_run_at.map_or(0.0, |t| t as f64 / 1000.0));
}

/// Carry out the loop's actions (submit through the engine, stop, journal), then persist its state.
pub fn apply_actions(engine: &mut Engine, golden: &mut Reconciler, actions: Vec<GoldenAction>, now: u64) {
    apply(engine, golden, actions, now);
    persist(engine, golden, now);
}

fn apply(engine: &mut Engine, golden: &mut Reconciler, actions: Vec<GoldenAction>, now: u64) {
    for a in actions {
        match a {
            GoldenAction::Submit { board, wave, request } => {
                let id = request.ur_req.upgrade_req_id.clone();
                let nodes = request.nodes.len();
                match engine.handle_operator(Message::UpgradeGroupReq(*request), now) {
                    Message::Ack(ack) if ack.success => {
                        tracing::info!(%board, %wave, request = %id, nodes, "golden-image loop started a wave")
                    }
                    other => {
                        let why = match other {
                            Message::Ack(a) => a.message,
                            m => m.kind().to_string(),
                        };
                        tracing::warn!(%board, %wave, request = %id, reason = %why, "the engine refused a golden wave");
                        let more = golden.handle_submit_refused(&id, &why, now);
                        apply(engine, golden, more, now);
                    }
                }
            }
            GoldenAction::StopAfterBatch { request_id, reason } => {
                let op = Operator { who: super::LOOP_WHO.into(), reason: Some(reason.clone()) };
                if !engine.stop_after_batch(&request_id, &op, &reason, now) {
                    tracing::debug!(request = %request_id, "golden wave to stop is not running (queued or done)");
                }
            }
            GoldenAction::Journal { operator, message } => {
                tracing::info!(who = %operator.who, "{message}");
                engine.journal_command(&operator, message, now);
            }
        }
    }
}

fn persist(engine: &mut Engine, golden: &mut Reconciler, now: u64) {
    if golden.take_dirty() {
        engine.save_golden(crate::store::to_json(golden.state()), now);
    }
}
