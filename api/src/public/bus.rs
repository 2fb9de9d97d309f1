//! Availability changes for anonymous subscribers (`availabilityChanged`), as public views
//! only, on the server's event bus ([`crate::events`]): published after the change committed,
//! routed by municipality, and — with Redis — relayed to every instance of the deployment on
//! `{prefix}events:public-availability`, like stock and site-master events.
//!
//! Redis pub/sub keeps nothing: a change published while an instance is reconnecting is not
//! seen by that instance's subscribers; they are told so (an error asking them to refetch), and
//! the cache, which decides what searches return, does not depend on this bus.

use domain::public::PublicSite;
use serde::{Deserialize, Serialize};

use crate::events::Event;

/// A site's public card after its availability changed.
#[derive(Serialize, Deserialize)]
pub struct AvailabilityChanged(pub PublicSite);

impl AvailabilityChanged {
    /// The routing key of a municipality's changes.
    pub fn key(municipality: &domain::codes::MunicipalityCode) -> String {
        format!("municipality:{municipality}")
    }
}

impl Event for AvailabilityChanged {
    const TOPIC: &'static str = "public-availability";

    fn keys(&self) -> Vec<String> {
        vec![Self::key(&self.0.municipality)]
    }

    fn capacity(_key: &str) -> usize {
        // One channel per watched municipality, shared by all its page viewers.
        1024
    }
}
