//! What a client id that is not the thing name does under the shipped files, and the
//! `use_username_as_clientid true` listener line docs/authorization.md offers against it.

use std::time::Duration;

use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::eventually;

use super::GW_B_ACCEPTED;
use super::client::connect;

const TAKEOVER: &str = "Client gw-b already connected, closing old connection.";

#[tokio::test]
async fn another_things_client_id_pushes_that_thing_off_unless_the_listener_uses_the_user_name_as_client_id()
 {
    let pki = Pki::generate();
    let (gw_a, gw_b) = (pki.issue_client("gw-a"), pki.issue_client("gw-b"));
    let fleet_id = pki.issue_client("detect-fleet");

    // The shipped files: gw-a under client id gw-b takes gw-b's session over.
    let shipped = Broker::start_shipped(&pki);
    let owner = connect(&pki, &gw_b, None, "gw-b", shipped.port, &[GW_B_ACCEPTED]).await;
    let impostor = connect(&pki, &gw_a, None, "gw-b", shipped.port, &[]).await;
    let pushed = eventually(Duration::from_secs(20), || shipped.log().contains(TAKEOVER)).await;
    assert!(pushed, "{}", shipped.log());
    drop((owner, impostor));

    // With use_username_as_clientid the impostor is gw-a, and gw-b keeps its session.
    let hardened = Broker::start_shipped_with(&pki, "use_username_as_clientid true\n");
    let port = hardened.port;
    let owner = connect(&pki, &gw_b, None, "gw-b", port, &[GW_B_ACCEPTED]).await;
    let _impostor = connect(&pki, &gw_a, None, "gw-b", port, &[]).await;
    let fleet = connect(&pki, &fleet_id, None, "fleet-1", port, &[]).await;
    fleet
        .send(GW_B_ACCEPTED, br#"{"reportId":3}"#.to_vec())
        .await;
    let kept = eventually(Duration::from_secs(20), || !owner.received().is_empty()).await;
    assert!(kept, "{}", hardened.log());
    let log = hardened.log();
    assert!(!log.contains(TAKEOVER), "{log}");
    assert!(log.contains(" as gw-a (p2, c1, k5, u'gw-a')"), "{log}");
    // detect-fleet's own client id becomes its user name too.
    assert!(
        log.contains(" as detect-fleet (p2, c1, k5, u'detect-fleet')"),
        "{log}"
    );
}
