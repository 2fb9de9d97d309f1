//! In-process fan-out of committed changes to subscriptions. Publishing happens after the
//! domain call returned, i.e. after its transaction committed, so a rolled-back change is never
//! announced. A slow subscriber never blocks a writer: the channel is bounded and a subscriber
//! that falls behind is told so (it sees a "lagged" error and refetches).

use std::sync::Arc;

use tokio::sync::broadcast;

/// Capacity per subscriber before it is declared behind.
const CAPACITY: usize = 1024;

#[derive(Clone)]
pub struct SiteEvents {
    tx: broadcast::Sender<Arc<domain::site::Site>>,
}

impl Default for SiteEvents {
    fn default() -> Self {
        SiteEvents {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl SiteEvents {
    pub fn publish(&self, site: &domain::site::Site) {
        // No receivers is fine: nobody is listening.
        let _ = self.tx.send(Arc::new(site.clone()));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<domain::site::Site>> {
        self.tx.subscribe()
    }
}
