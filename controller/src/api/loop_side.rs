//! The controller loop's side of the HTTP API (a child module of `server`, so it works on the
//! loop's own `Shell`): API calls are answered here, on the loop's turn, exactly as app-socket
//! requests are — the same role check, the same `who`, the same journal, the same read snapshots.

use super::{now_ms, Shell};
use crate::api::dto::{EventDto, NodeChange};
use crate::api::{ApiCall, ApiOp, ApiReply, ImageDone, LoopMsg, LoopSide};
use crate::auth;
use crate::dist::ImageStore;
use crate::engine::{Engine, EngineEvent, EventLevel};
use meshlift_protocol::*;

impl Shell {
    /// One message from the API channel.
    pub(super) fn on_api(&mut self, engine: &mut Engine, images: &ImageStore, msg: LoopMsg) {
        match msg {
            LoopMsg::Call(call) => self.on_api_call(engine, images, call),
            LoopMsg::ImageDone(done) => {
                self.reads.clear();
                on_api_image_done(engine, done);
            }
        }
    }

    fn on_api_call(&mut self, engine: &mut Engine, images: &ImageStore, call: ApiCall) {
        let ApiCall { caller, op, reply } = call;
        let _span = tracing::info_span!("api", who = %caller.name).entered();
        let mut body = match op {
            // Every token has at least the viewer role, which is all these need.
            ApiOp::Journal { after, last, limit } => {
                let store = self.outbox.store();
                let after = match (after, last) {
                    (Some(a), _) => Ok(a),
                    (None, Some(n)) => store.journal_len().map(|len| len as i64 - n as i64),
                    (None, None) => Ok(0),
                };
                let lines = after.and_then(|a| store.journal(a, limit)).map_err(|e| e.to_string());
                let _ = reply.send(ApiReply::Journal(lines));
                return;
            }
            ApiOp::Map => {
                let live = engine.golden_fleet(now_ms()).live.unwrap_or_else(|| engine.topology().clone());
                let _ = reply.send(ApiReply::Map(Box::new(live)));
                return;
            }
            ApiOp::Message(m) => *m,
        };
        let (need, what) = auth::required_role(&body, self.limit_cap);
        if caller.role < need {
            let why = format!(
                "refused: {what} needs role {}; {} has role {}",
                need.as_str(),
                caller.name,
                caller.role.as_str()
            );
            tracing::warn!("{why}");
            self.count_refused("api", "forbidden");
            let op = Operator { who: caller.name.clone(), reason: Some(why.clone()) };
            engine.journal_command(&op, format!("refused {}: {why}", body.kind()), now_ms());
            let _ = reply.send(ApiReply::Forbidden(why));
            return;
        }
        if let Some(op) = body.operator_mut() {
            op.who = caller.name.clone();
        }
        let is_read = matches!(
            body,
            Message::UpgradeStateReq(_)
                | Message::UpgradeCommitPlanReq(_)
                | Message::UpgradeListImagesReq(_)
                | Message::NodeStatusReq(_)
                | Message::GoldenShowReq(_)
                | Message::VersionsReq(_)
                | Message::ImageRecordsReq(_)
                | Message::SnapshotShowReq(_)
        );
        if !is_read {
            self.reads.clear();
            if let Some(why) = self.refuse_if_degraded() {
                self.count_refused("api", "degraded");
                let _ = reply.send(ApiReply::Message(Box::new(Message::Ack(Ack::refused(why)))));
                return;
            }
        }
        let answer = match body {
            Message::UpgradeAddImageReq(req) => {
                if let Err(e) = crate::catalog::retag("", &Default::default(), &req.tags, &[]) {
                    let _ =
                        reply.send(ApiReply::Message(Box::new(Message::Ack(Ack::refused(e.to_string())))));
                    return;
                }
                let images = images.clone();
                let tx = self.api.calls_tx.clone();
                tokio::spawn(async move {
                    let result = images.add(&req.image_url).await.map_err(|e| e.to_string());
                    let done =
                        ImageDone { added: true, result, operator: req.operator, tags: req.tags, reply };
                    let _ = tx.send(LoopMsg::ImageDone(done)).await;
                });
                return;
            }
            Message::UpgradeDelImageReq(req) => {
                // As on the app socket: the engine refuses while a request needs the image.
                if let Err(e) = engine.remove_image(&req.name, req.operator.clone(), now_ms()) {
                    if images.get(&req.name).is_none()
                        || !matches!(e, crate::engine::EngineError::UnknownImage(_))
                    {
                        let _ = reply
                            .send(ApiReply::Message(Box::new(Message::Ack(Ack::refused(e.to_string())))));
                        return;
                    }
                }
                let images = images.clone();
                let tx = self.api.calls_tx.clone();
                tokio::spawn(async move {
                    let result = images.del(&req.name).await.map_err(|e| e.to_string());
                    let done =
                        ImageDone { added: false, result, operator: req.operator, tags: Vec::new(), reply };
                    let _ = tx.send(LoopMsg::ImageDone(done)).await;
                });
                return;
            }
            Message::UpgradeListImagesReq(_) => {
                Message::UpgradeListImagesResp(UpgradeListImagesResp { images: images.list() })
            }
            Message::GoldenReq(req) => {
                Message::Ack(crate::golden::drive::command(engine, &mut self.golden, req, now_ms()))
            }
            Message::GoldenShowReq(_) => {
                Message::GoldenShow(crate::golden::drive::show(engine, &self.golden, now_ms()))
            }
            Message::SnapshotReq(req) => crate::snapshot::command(engine, &mut self.golden, req, now_ms()),
            Message::SnapshotShowReq(req) => crate::snapshot::show(engine, &self.golden, req.name.as_deref()),
            Message::UpgradeStateReq(_) => self.reads.state(engine),
            Message::UpgradeCommitPlanReq(req) => self.reads.plan(engine, req),
            other => engine.handle_operator(other, now_ms()),
        };
        let mut answer = answer;
        if !is_read {
            self.note_if_held(engine, &mut answer);
        }
        let _ = reply.send(ApiReply::Message(Box::new(answer)));
    }

    /// Publish an engine event on the API's event stream (nobody listening costs one check).
    pub(super) fn api_engine_event(&self, ev: &EngineEvent) {
        if self.api.events.receiver_count() == 0 {
            return;
        }
        let level = match ev.level {
            EventLevel::Info => "info",
            EventLevel::Warn => "warn",
            EventLevel::Error => "error",
        };
        let _ = self.api.events.send(EventDto::Engine {
            level: level.into(),
            request_id: ev.request_id.clone(),
            node: ev.node.clone(),
            message: ev.message.clone(),
        });
    }

    /// At a tick: the nodes whose state, version or liveness changed since the last publication,
    /// as one `nodes` event. Only while someone listens.
    pub(super) fn api_publish_nodes(&mut self, engine: &Engine) {
        publish_nodes(&mut self.api, engine);
    }
}

fn publish_nodes(api: &mut LoopSide, engine: &Engine) {
    if api.events.receiver_count() == 0 {
        api.published.clear();
        return;
    }
    let dump = engine.node_status(now_ms());
    let rows: Vec<NodeChange> = dump
        .nodes
        .iter()
        .map(|r| NodeChange {
            name: r.name.clone(),
            state: r.upgrade_status.as_ref().map(|u| u.us_type.as_str().to_string()),
            version: r.version.clone(),
            online: r.online,
        })
        .collect();
    let changed: Vec<NodeChange> = if api.published.len() == rows.len() {
        rows.iter().zip(&api.published).filter(|(new, old)| new != old).map(|(new, _)| new.clone()).collect()
    } else {
        rows.clone()
    };
    api.published = rows;
    if !changed.is_empty() {
        let _ = api.events.send(EventDto::Nodes { nodes: changed });
    }
}

fn on_api_image_done(engine: &mut Engine, done: ImageDone) {
    let ImageDone { added, result, operator, tags, reply } = done;
    let answer = match (added, result) {
        (true, Ok(img)) => {
            engine.add_image(img.clone(), operator.clone(), now_ms());
            if !tags.is_empty() {
                let req = meshlift_protocol::fleet::ImageTagReq {
                    name: img.name.clone(),
                    add: tags,
                    remove: Vec::new(),
                    operator,
                };
                engine.tag_image(req, now_ms());
            }
            ApiReply::Image(Box::new(img))
        }
        (false, Ok(img)) => {
            tracing::info!(who = %operator.who, image = %img.name, "image deleted");
            ApiReply::Message(Box::new(Message::Ack(Ack::ok(format!("Deleted image {}", img.name)))))
        }
        (true, Err(e)) => {
            tracing::warn!(who = %operator.who, reason = %e, "image add refused");
            ApiReply::Message(Box::new(Message::Ack(Ack::refused(e))))
        }
        (false, Err(e)) => ApiReply::Message(Box::new(Message::Ack(Ack::refused(e)))),
    };
    let _ = reply.send(answer);
}
