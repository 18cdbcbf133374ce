//! Commands that talk to a running controller: placeholder.
use clap::Args;

#[derive(Args)]
pub struct UpgradeArgs {}
#[derive(Args)]
pub struct StatusArgs {}
#[derive(Args)]
pub struct ImageAddArgs {}
#[derive(Args)]
pub struct ImageDelArgs {}
#[derive(Args)]
pub struct ImageListArgs {}

fn todo_(what: &str) -> u8 {
    eprintln!("meshlift {what}: not implemented yet");
    2
}
pub fn upgrade(_a: UpgradeArgs) -> u8 {
    todo_("upgrade")
}
pub fn status(_a: StatusArgs) -> u8 {
    todo_("status")
}
pub fn image_add(_a: ImageAddArgs) -> u8 {
    todo_("image add")
}
pub fn image_del(_a: ImageDelArgs) -> u8 {
    todo_("image del")
}
pub fn image_list(_a: ImageListArgs) -> u8 {
    todo_("image list")
}
