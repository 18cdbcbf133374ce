//! Image records on the engine: tags (stored in the `image_tags` table, one transaction with the
//! journal line), filtered listings, and the `latest`/`earliest` selectors resolved against the
//! images the engine can send ([`crate::catalog`] holds the rules).

use meshlift_protocol::fleet::{ImageRecords, ImageRecordsReq, ImageTagReq};
use meshlift_protocol::{Ack, UpgradeGroupReq, UpgradeImage};

use super::Engine;
use crate::catalog::{self, CatalogError};
use crate::store::StoreOp;

impl Engine {
    /// The stored image `text` names (a name or a selector, see [`catalog`]); `board` restricts a
    /// selector that names none.
    pub fn resolve_image(&self, text: &str, board: Option<&str>) -> Result<&UpgradeImage, CatalogError> {
        catalog::resolve(text, board, self.images.values())
    }

    /// Image records passing the filters, oldest version first.
    pub fn image_records(&self, req: &ImageRecordsReq) -> ImageRecords {
        catalog::records(self.images.values(), &self.tags, req)
    }

    /// Tags of one image, sorted.
    pub fn image_tags(&self, name: &str) -> Vec<String> {
        self.tags.get(name).map_or_else(Vec::new, |t| t.iter().cloned().collect())
    }

    /// Add and remove tags of an image, journaled with who and why.
    pub fn tag_image(&mut self, req: ImageTagReq, now: u64) -> Ack {
        let now = self.clock(now);
        let name = match self.resolve_image(&req.name, None) {
            Ok(i) => i.name.clone(),
            Err(e) => return Ack::refused(e.to_string()),
        };
        let current = self.tags.get(&name).cloned().unwrap_or_default();
        let next = match catalog::retag(&name, &current, &req.add, &req.remove) {
            Ok(t) => t,
            Err(e) => return Ack::refused(e.to_string()),
        };
        let list = |s: &std::collections::BTreeSet<String>| {
            if s.is_empty() {
                "none".to_string()
            } else {
                s.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        };
        let msg = format!("image {name} tags: {} → {}", list(&current), list(&next));
        self.command(now, None, &req.operator, msg.clone());
        self.ops.push(StoreOp::PutImageTags { name: name.clone(), tags: next.iter().cloned().collect() });
        if next.is_empty() {
            self.tags.remove(&name);
        } else {
            self.tags.insert(name, next);
        }
        self.flush();
        Ack::ok(msg)
    }

    /// A request whose `image_name` is a selector gets the name it resolves to (journaled with the
    /// request as the name itself); a selector nothing answers is refused, naming what was looked
    /// for. Names are left alone: the intake's own check reports an unknown one.
    pub(super) fn resolve_request_image(&self, req: &mut UpgradeGroupReq) -> Result<(), String> {
        let Some(text) = req.ur_req.image_name.as_deref() else { return Ok(()) };
        if self.images.contains_key(text) || catalog::Selector::parse(text).is_none() {
            return Ok(());
        }
        let img = self.resolve_image(text, None).map_err(|e| e.to_string())?;
        req.ur_req.image_name = Some(img.name.clone());
        Ok(())
    }
}
