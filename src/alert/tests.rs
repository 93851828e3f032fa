use super::*;

fn policy(edit: impl FnOnce(&mut AlertPolicy)) -> AlertPolicy {
    let mut policy = AlertPolicy::default_for(vec!["ops".into()]);
    edit(&mut policy);
    policy
}

fn run(policy: &AlertPolicy, endings: &[(Ending, UnixMs)]) -> Vec<(UnixMs, AlertEvent)> {
    let mut health = JobHealth::default();
    endings
        .iter()
        .filter_map(|(ending, at)| decide(policy, &mut health, *ending, *at).map(|e| (*at, e)))
        .collect()
}

#[test]
fn state_change_alerts_once_when_red_and_once_when_green_again() {
    let mut endings: Vec<(Ending, UnixMs)> =
        (0..10).map(|n| (Ending::Failed, n * 60_000)).collect();
    endings.push((Ending::Succeeded, 700_000));
    endings.push((Ending::Succeeded, 760_000));
    assert_eq!(
        run(&policy(|_| {}), &endings),
        vec![(0, AlertEvent::Failure), (700_000, AlertEvent::Recovery)]
    );
}

#[test]
fn every_mode_alerts_each_failure_outside_the_silence() {
    let every = policy(|p| {
        p.mode = AlertMode::Every;
        p.silence_ms = 150_000;
    });
    let endings: Vec<(Ending, UnixMs)> = (0..5).map(|n| (Ending::Failed, n * 60_000)).collect();
    // 0 alerts; 60 and 120 s are silenced; 180 s alerts; 240 s silenced again.
    assert_eq!(
        run(&every, &endings),
        vec![(0, AlertEvent::Failure), (180_000, AlertEvent::Failure)]
    );
}

#[test]
fn a_threshold_needs_that_many_failures_within_the_window_without_a_success() {
    let three_in_five = policy(|p| {
        p.threshold_failures = 3;
        p.threshold_within_ms = 300_000;
    });
    let spread = [
        (Ending::Failed, 0),
        (Ending::Failed, 200_000),
        (Ending::Failed, 400_000), // the first fell out of the window
        (Ending::Succeeded, 450_000),
        (Ending::Failed, 500_000),
        (Ending::Failed, 510_000),
        (Ending::Failed, 520_000),
    ];
    assert_eq!(
        run(&three_in_five, &spread),
        vec![(520_000, AlertEvent::Failure)]
    );
}

#[test]
fn events_not_asked_for_neither_alert_nor_count() {
    let failures_only = policy(|p| p.on = vec![AlertEvent::Failure]);
    let endings = [
        (Ending::Expired, 0),
        (Ending::Failed, 1),
        (Ending::Succeeded, 2),
    ];
    assert_eq!(
        run(&failures_only, &endings),
        vec![(1, AlertEvent::Failure)]
    );
}

#[test]
fn secrets_never_show_in_debug_or_redacted_definitions() {
    let channel = ChannelDefinition {
        name: "ops".into(),
        default: false,
        target: ChannelTarget::Webhook {
            url: "http://127.0.0.1:1/hook".into(),
            headers: vec![("Authorization".into(), Secret("Bearer s3cret".into()))],
            hmac_key: Some(Secret("k3y".into())),
        },
    };
    let debug = format!("{channel:?}");
    let shown = serde_json::to_string(&channel.redacted()).unwrap();
    for text in [debug, shown] {
        assert!(!text.contains("s3cret") && !text.contains("k3y"), "{text}");
    }
}

#[test]
fn retries_back_off_and_are_bounded() {
    assert_eq!(retry_delay_ms(1), 1_000);
    assert_eq!(retry_delay_ms(2), 2_000);
    assert_eq!(retry_delay_ms(11), 300_000);
}
