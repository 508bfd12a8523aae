//! Attribution and cleanup without cgroups: the session rule alone.
#![cfg(feature = "process")]

mod common;

use std::time::Duration;

use common::*;
use edgesec_runtime::{CgroupMode, ModuleRuntime, ProcessRuntime, ProcessRuntimeConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_rule_attributes_new_groups_and_fails_closed_on_setsid() {
    let rt = ProcessRuntime::new(ProcessRuntimeConfig {
        cgroups: CgroupMode::Disabled,
        ..ProcessRuntimeConfig::default()
    })
    .await
    .unwrap();
    assert!(rt.cgroup_dir().is_none());

    // One child moves to a process group of its own (same session), one leaves the session.
    let script = "perl -e 'setpgrp(0,0); sleep 32' & setsid sleep 33 & wait";
    rt.create("s", sh(script), vec![]).await.unwrap();
    rt.create("other", sh("sleep 30"), vec![]).await.unwrap();
    rt.start("other").await.unwrap();
    rt.start("s").await.unwrap();
    let leader = rt.state("s").await.unwrap().pid.unwrap();

    let regrouped = wait_for("the regrouped child", || {
        children_of(leader).into_iter().find(|&p| {
            cmdline(p).starts_with("perl")
                && edgesec_attest::read_stat(p).is_ok_and(|st| st.pgrp == p)
        })
    })
    .await;
    let escapee = wait_for("the escaped child", || {
        children_of(leader).into_iter().find(|&p| {
            cmdline(p) == "sleep 33" && edgesec_attest::read_stat(p).is_ok_and(|st| st.session == p)
        })
    })
    .await;

    assert_eq!(rt.owner_of(leader).await.as_deref(), Some("s"));
    assert_eq!(rt.owner_of(regrouped).await.as_deref(), Some("s"));
    assert_eq!(
        rt.owner_of(escapee).await,
        None,
        "left the session: nobody's"
    );

    let regrouped_pin = edgesec_attest::PinnedProcess::pin(regrouped, None).unwrap();
    let escapee_pin = edgesec_attest::PinnedProcess::pin(escapee, None).unwrap();
    rt.stop("s", Duration::from_secs(30)).await.unwrap();
    // The session scan finds the regrouped child although SIGTERM to the group missed it.
    wait_for("regrouped child killed", || {
        (!regrouped_pin.is_alive()).then_some(())
    })
    .await;
    // The escapee is out of reach without a cgroup; end it here.
    assert!(escapee_pin.is_alive());
    rustix::process::pidfd_send_signal(escapee_pin.pidfd().as_ref(), rustix::process::Signal::KILL)
        .unwrap();
    assert_eq!(rt.owner_of(leader).await, None);
    rt.shutdown(Duration::from_secs(30)).await.unwrap();
}
