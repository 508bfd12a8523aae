//! What a process that is not a module (any local user can reach the shared workload socket)
//! gets. A flood of refused requests is still refused, but the audit log keeps a budget of
//! lines per caller and second and sums the rest in one line, routes are cut to a bounded
//! length, and the daemon's own log does not grow with every request (before, a few seconds of
//! flooding rotated every earlier record out of the audit log). The open module list leaves
//! out the modules' environments, which often hold credentials.

mod common;

use std::collections::HashMap;

use common::*;
use edgesec_http::{NO_BODY, UdsClient};
use http::Method;

const FLOOD: usize = 1500;

#[test]
fn a_flood_of_refused_requests_cannot_push_earlier_records_out_of_the_audit_log() {
    let edge = Edge::quickstart(&deployment(&[]));
    edge.wait_status("edgeAgent", "running");
    let before: Vec<_> = edge.audit();
    assert!(!before.is_empty(), "the agent's calls are audited");
    let log_before = edge.log().len();

    let long = "a".repeat(8000);
    let path = format!("/modules/{long}/genid/1/sign?{V}");
    let client = UdsClient::new(edge.path("run/workload.sock"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut statuses = HashMap::new();
    rt.block_on(async {
        for _ in 0..FLOOD {
            let (status, _) = client
                .request(Method::POST, &path, NO_BODY)
                .await
                .expect("answered");
            *statuses.entry(status.as_u16()).or_insert(0) += 1;
        }
    });
    assert_eq!(
        statuses,
        HashMap::from([(403, FLOOD)]),
        "every request refused"
    );

    // The summary line comes once the flood's last window has ended.
    let me = std::process::id() as i64;
    let counts = || {
        let lines = edge.audit();
        let written = lines.iter().filter(|l| l["pid"] == me).count() as u64;
        let suppressed: u64 = lines
            .iter()
            .filter(|l| l["uid"] == edge_uid() && l["socket"] == "workload")
            .filter_map(|l| l["suppressed"].as_u64())
            .sum();
        (written, suppressed)
    };
    wait_until(
        "the audit summary of the flood",
        || {
            let (w, s) = counts();
            w + s == FLOOD as u64
        },
        || format!("written, suppressed: {:?}", counts()),
    );
    let (written, suppressed) = counts();
    assert!(written > 0 && suppressed > 0, "{written} / {suppressed}");
    let after = edge.audit();
    for l in after.iter().filter(|l| l["pid"] == me) {
        let route = l["route"].as_str().unwrap();
        assert!(route.len() < 400 && route.ends_with("bytes)"), "{route}");
    }
    // Every record from before the flood is still there.
    for r in &before {
        assert!(after.contains(r), "lost: {r}");
    }
    // The daemon's log grew by a bounded amount, not by a line of 8 KB per request.
    let grown = edge.log().len() - log_before;
    assert!(grown < 200 * 1024, "the daemon log grew by {grown} bytes");
}

fn edge_uid() -> i64 {
    // SAFETY: getuid has no preconditions.
    i64::from(unsafe { libc::getuid() })
}

#[test]
fn the_open_module_list_leaves_out_environments() {
    let d = r#""secretive": { "type": "process", "restartPolicy": "always", "startupOrder": 1,
        "env": { "SECRET_TOKEN": { "value": "hunter2" } },
        "settings": { "command": "/bin/sleep", "args": ["600"] } }"#;
    let edge = Edge::quickstart(&deployment(&[d.to_owned()]));
    edge.wait_status("secretive", "running");
    let (code, body) = edge.mgmt("GET", &format!("/modules?{V}"), None);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("hunter2"),
        "the management API shows it to admins: {body}"
    );

    let client = UdsClient::new(edge.path("run/workload.sock"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt
        .block_on(client.request(Method::GET, &format!("/modules?{V}"), NO_BODY))
        .unwrap();
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status.as_u16(), 200, "{body}");
    assert!(body.contains("secretive"), "{body}");
    assert!(
        !body.contains("hunter2") && !body.contains("SECRET_TOKEN"),
        "{body}"
    );
}
