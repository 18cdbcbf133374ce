//! Mender-style fault matrix (peers.md §3): for every state an error, a crash (process killed,
//! restart from disk) and a hang (timeout), asserting the exact chain of states the controller
//! receives, the boot environment, and that the running slot's bytes never change.

mod harness;

use harness::{link, Node, FACTORY_PAYLOAD};
use meshlift_image::HookKind;
use meshlift_protocol::{SlotId, UpgradeReq, UpgradeReqType, UpgradeStatusType as S};
use std::path::{Path, PathBuf};

const NEW_PAYLOAD: &[u8] = b"new rootfs v2.0.0 -- a few more bytes than the factory one";
const PASS: &str = "#!/bin/sh\nexit 0\n";
const FAIL: &str = "#!/bin/sh\necho radio firmware mismatch\nexit 3\n";
const HANG: &str = "#!/bin/sh\necho checking\nexec sleep 30\n";

/// Expected end of a scenario.
struct Expect {
    chain: &'static [S],
    active: SlotId,
    running: SlotId,
    failed_images: usize,
    reason_contains: &'static str,
}

struct Case {
    name: &'static str,
    hooks: &'static [(HookKind, &'static str)],
    run: fn(&mut Node, &PathBuf),
    expect: Expect,
}

fn to_flashed(node: &mut Node, img: &Path) {
    assert!(node.prepare("prep-1", img).success);
    node.finish_download(Ok(img.to_path_buf()));
    assert_eq!(node.status(), S::Flashed, "{:?}", node.agent().status());
}

fn to_trial(node: &mut Node, img: &Path) {
    to_flashed(node, img);
    assert!(node.commit("commit-1").success);
    assert_eq!(node.status(), S::Trial);
}

const HAPPY: &[S] =
    &[S::None, S::DownloadingImage, S::FlashingImage, S::Flashed, S::Rebooting, S::Trial, S::Confirmed];
const FELL_BACK: &[S] =
    &[S::None, S::DownloadingImage, S::FlashingImage, S::Flashed, S::Rebooting, S::Trial, S::FellBack];

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "happy_path",
            hooks: &[(HookKind::PostBootCheck, PASS)],
            run: |n, img| {
                to_trial(n, img);
                n.ack();
            },
            expect: Expect {
                chain: HAPPY,
                active: SlotId::B,
                running: SlotId::B,
                failed_images: 0,
                reason_contains: "",
            },
        },
        Case {
            name: "error_in_download",
            hooks: &[],
            run: |n, img| {
                n.prepare("p", img);
                n.finish_download(Err("tracker unreachable and HTTP 404".into()));
            },
            expect: Expect {
                chain: &[S::None, S::DownloadingImage, S::DownloadFailed],
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 0,
                reason_contains: "HTTP 404",
            },
        },
        Case {
            name: "error_in_download_forever",
            hooks: &[],
            run: |n, img| {
                for i in 0..3 {
                    n.prepare(&format!("p{i}"), img);
                    n.finish_download(Err("no route to seeder".into()));
                }
            },
            expect: Expect {
                chain: &[
                    S::None,
                    S::DownloadingImage,
                    S::DownloadFailed,
                    S::DownloadingImage,
                    S::DownloadFailed,
                    S::DownloadingImage,
                    S::DownloadFailed,
                ],
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 0,
                reason_contains: "no route",
            },
        },
        Case {
            name: "killed_in_download",
            hooks: &[],
            run: |n, img| {
                n.prepare("p", img);
                n.crash();
            },
            expect: Expect {
                chain: &[S::None, S::DownloadingImage, S::DownloadFailed],
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 0,
                reason_contains: "restarted during the download",
            },
        },
        Case {
            name: "hang_in_download",
            hooks: &[],
            run: |n, img| {
                n.prepare("p", img);
                n.advance(180_000);
                // The downloader enforces download_timeout_s and reports it.
                n.finish_download(Err("download timed out after 180s".into()));
            },
            expect: Expect {
                chain: &[S::None, S::DownloadingImage, S::DownloadFailed],
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 0,
                reason_contains: "timed out",
            },
        },
        Case {
            name: "error_in_flash_corrupt_image",
            hooks: &[],
            run: |n, img| {
                n.prepare("p", img);
                let mut bytes = std::fs::read(img).unwrap();
                let last = bytes.len() - 1;
                bytes[last] ^= 0x55;
                std::fs::write(img, bytes).unwrap();
                n.finish_download(Ok(img.clone()));
            },
            expect: Expect {
                chain: &[S::None, S::DownloadingImage, S::FlashingImage, S::FlashFailed],
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 0,
                reason_contains: "corrupt payload",
            },
        },
        Case {
            name: "killed_in_flash_power_cut_then_retry",
            hooks: &[],
            run: |n, img| {
                n.prepare("p", img);
                // Power cut in the middle of the write: a torn slot file, no metadata.
                std::fs::write(n.data().join("slots/b.img"), &NEW_PAYLOAD[..10]).unwrap();
                n.faults.crash_at = Some("Flash");
                n.faults.crash_times = 1;
                n.finish_download(Ok(img.clone()));
                assert_eq!(n.status(), S::FlashFailed);
                assert_eq!(
                    n.agent().status().reason,
                    "minion restarted during the flash; standby slot left invalid"
                );
                // Retried by the controller: works.
                n.prepare("p-retry", img);
                n.finish_download(Ok(img.clone()));
            },
            expect: Expect {
                chain: &[
                    S::None,
                    S::DownloadingImage,
                    S::FlashingImage,
                    S::FlashFailed,
                    S::DownloadingImage,
                    S::FlashingImage,
                    S::Flashed,
                ],
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 0,
                reason_contains: "",
            },
        },
        Case {
            name: "hang_in_flash_pre_flash_hook",
            hooks: &[(HookKind::PreFlash, HANG)],
            run: |n, img| {
                n.prepare("p", img);
                n.finish_download(Ok(img.clone()));
            },
            expect: Expect {
                chain: &[S::None, S::DownloadingImage, S::FlashingImage, S::FlashFailed],
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 0,
                reason_contains: "pre-flash hook timed out",
            },
        },
        Case {
            name: "error_in_flash_post_flash_hook",
            hooks: &[(HookKind::PostFlash, FAIL)],
            run: |n, img| {
                n.prepare("p", img);
                n.finish_download(Ok(img.clone()));
                assert!(!n.commit("c").success || n.status() == S::CommitFailed);
            },
            expect: Expect {
                chain: &[S::None, S::DownloadingImage, S::FlashingImage, S::FlashFailed, S::CommitFailed],
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 0,
                reason_contains: "not ready to commit",
            },
        },
        Case {
            name: "killed_in_flashed_keeps_flashed_then_commits",
            hooks: &[],
            run: |n, img| {
                to_flashed(n, img);
                n.crash();
                assert_eq!(n.status(), S::Flashed);
                n.commit("c");
                n.ack();
            },
            expect: Expect {
                chain: HAPPY,
                active: SlotId::B,
                running: SlotId::B,
                failed_images: 0,
                reason_contains: "",
            },
        },
        Case {
            name: "killed_in_commit_scheduled",
            hooks: &[],
            run: |n, img| {
                to_flashed(n, img);
                let mut req = UpgradeReq::new(UpgradeReqType::CommitUpgrade, "c");
                req.schedule_to_commit_s = 30;
                n.request(req);
                assert_eq!(n.status(), S::CommitScheduled);
                n.crash();
                // A dropped schedule is never carried out later without a new request.
                n.advance(60_000);
            },
            expect: Expect {
                chain: &[
                    S::None,
                    S::DownloadingImage,
                    S::FlashingImage,
                    S::Flashed,
                    S::CommitScheduled,
                    S::Flashed,
                ],
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 0,
                reason_contains: "restarted before the scheduled commit",
            },
        },
        Case {
            name: "scheduled_commit_fires_at_its_time",
            hooks: &[],
            run: |n, img| {
                to_flashed(n, img);
                let mut req = UpgradeReq::new(UpgradeReqType::CommitUpgrade, "c");
                req.schedule_to_commit_s = 30;
                n.request(req);
                n.advance(29_999);
                assert_eq!(n.status(), S::CommitScheduled);
                n.advance(1);
                n.ack();
            },
            expect: Expect {
                chain: &[
                    S::None,
                    S::DownloadingImage,
                    S::FlashingImage,
                    S::Flashed,
                    S::CommitScheduled,
                    S::Rebooting,
                    S::Trial,
                    S::Confirmed,
                ],
                active: SlotId::B,
                running: SlotId::B,
                failed_images: 0,
                reason_contains: "",
            },
        },
        Case {
            name: "killed_in_rebooting_before_trial_armed",
            hooks: &[],
            run: |n, img| {
                to_flashed(n, img);
                n.faults.crash_at = Some("Reboot");
                n.faults.crash_times = 1;
                n.commit("c");
            },
            expect: Expect {
                chain: &[
                    S::None,
                    S::DownloadingImage,
                    S::FlashingImage,
                    S::Flashed,
                    S::Rebooting,
                    S::Flashed,
                ],
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 0,
                reason_contains: "restarted before the trial boot was armed",
            },
        },
        Case {
            name: "error_in_rebooting_boot_env_unwritable",
            hooks: &[],
            run: |n, img| {
                to_flashed(n, img);
                n.faults.arm_fails = true;
                n.commit("c");
            },
            expect: Expect {
                chain: &[
                    S::None,
                    S::DownloadingImage,
                    S::FlashingImage,
                    S::Flashed,
                    S::Rebooting,
                    S::CommitFailed,
                ],
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 0,
                reason_contains: "boot environment is read-only",
            },
        },
        Case {
            name: "error_in_trial_post_boot_check_fails",
            hooks: &[(HookKind::PostBootCheck, FAIL)],
            run: |n, img| {
                to_flashed(n, img);
                n.commit("c");
            },
            expect: Expect {
                chain: FELL_BACK,
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 1,
                reason_contains: "post-boot-check hook exited with 3: radio firmware mismatch",
            },
        },
        Case {
            name: "hang_in_trial_post_boot_check_hangs",
            hooks: &[(HookKind::PostBootCheck, HANG)],
            run: |n, img| {
                to_flashed(n, img);
                n.commit("c");
            },
            expect: Expect {
                chain: FELL_BACK,
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 1,
                reason_contains: "post-boot-check hook timed out",
            },
        },
        Case {
            name: "hang_in_trial_no_controller_ack",
            hooks: &[],
            run: |n, img| {
                to_trial(n, img);
                n.advance(59_999);
                assert_eq!(n.status(), S::Trial);
                n.advance(1);
            },
            expect: Expect {
                chain: FELL_BACK,
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 1,
                reason_contains: "no ack from the controller",
            },
        },
        Case {
            name: "error_in_trial_link_does_not_come_back",
            hooks: &[],
            run: |n, img| {
                to_flashed(n, img);
                n.commit("c");
                n.set_links(vec![link("l1", true), link("l2", false)]);
                n.ack();
                assert_eq!(n.status(), S::Trial);
                n.advance(60_000);
            },
            expect: Expect {
                chain: FELL_BACK,
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 1,
                reason_contains: "links still down: l2",
            },
        },
        Case {
            name: "skip_links_ignores_a_link_that_stays_down",
            hooks: &[],
            run: |n, img| {
                to_flashed(n, img);
                let mut req = UpgradeReq::new(UpgradeReqType::CommitUpgrade, "c");
                req.skip_links = vec!["l2".into()];
                n.links = vec![link("l1", true), link("l2", false)];
                n.request(req);
                n.ack();
            },
            expect: Expect {
                chain: HAPPY,
                active: SlotId::B,
                running: SlotId::B,
                failed_images: 0,
                reason_contains: "",
            },
        },
        Case {
            name: "killed_in_trial",
            hooks: &[],
            run: |n, img| {
                to_trial(n, img);
                n.crash();
            },
            expect: Expect {
                chain: FELL_BACK,
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 1,
                reason_contains: "rebooted before the trial was confirmed",
            },
        },
        Case {
            name: "killed_at_confirm_before_boot_env_written",
            hooks: &[],
            run: |n, img| {
                to_trial(n, img);
                n.faults.crash_at = Some("Confirm");
                n.faults.crash_times = 1;
                n.ack();
            },
            expect: Expect {
                chain: FELL_BACK,
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 1,
                reason_contains: "rebooted before the trial was confirmed",
            },
        },
        Case {
            name: "killed_in_trial_forever_no_reboot_loop",
            hooks: &[],
            run: |n, img| {
                to_trial(n, img);
                for _ in 0..3 {
                    n.crash();
                }
                // The controller retries the same image: refused without touching a slot.
                n.prepare("p-again", img);
                n.finish_download(Ok(img.clone()));
            },
            expect: Expect {
                chain: &[
                    S::None,
                    S::DownloadingImage,
                    S::FlashingImage,
                    S::Flashed,
                    S::Rebooting,
                    S::Trial,
                    S::FellBack,
                    S::DownloadingImage,
                    S::FlashingImage,
                    S::FlashFailed,
                ],
                active: SlotId::A,
                running: SlotId::A,
                failed_images: 1,
                reason_contains: "failed its trial on this node before",
            },
        },
        Case {
            name: "unrelated_reboot_after_confirm_stays_on_new_slot",
            hooks: &[],
            run: |n, img| {
                to_trial(n, img);
                n.ack();
                n.crash();
            },
            expect: Expect {
                chain: HAPPY,
                active: SlotId::B,
                running: SlotId::B,
                failed_images: 0,
                reason_contains: "",
            },
        },
    ]
}

#[test]
fn fault_matrix() {
    let mut failures = Vec::new();
    for case in cases() {
        let mut node = Node::new();
        let img = node.image("new", "2.0.0", NEW_PAYLOAD, case.hooks);
        (case.run)(&mut node, &img);
        let status = node.agent().status().clone();
        let env = node.env();
        let mut problems = Vec::new();
        if node.chain != case.expect.chain {
            problems.push(format!("chain {:?}", node.chain));
        }
        if env.active != case.expect.active {
            problems.push(format!("active {:?}", env.active));
        }
        if node.running_slot != case.expect.running {
            problems.push(format!("running {:?}", node.running_slot));
        }
        if env.failed.len() != case.expect.failed_images {
            problems.push(format!("failed {:?}", env.failed));
        }
        if !status.reason.contains(case.expect.reason_contains) {
            problems.push(format!("reason {:?}", status.reason));
        }
        if env.trial.is_some() {
            problems.push("a trial is still pending in the boot env".into());
        }
        // Slot A ran the whole time (or was the fallback target): its bytes never change.
        if node.slot_bytes(SlotId::A) != FACTORY_PAYLOAD {
            problems.push("slot A bytes changed".into());
        }
        if case.expect.chain.last() == Some(&S::FellBack) {
            let fb = node.agent().last_fallback().cloned();
            if fb.as_ref().map(|f| f.version.as_str()) != Some("2.0.0") {
                problems.push(format!("last_fallback {fb:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
