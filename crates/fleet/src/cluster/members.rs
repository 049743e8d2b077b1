//! Who is in the cluster: every instance says hello on a core NATS subject each renewal
//! period, and goodbye when it stops gracefully; the members are the names heard within one
//! lease and not gone since (this instance always counts).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt;

/// Names remembered at most (hellos from more distinct names are ignored and counted).
const MAX_MEMBERS: usize = 4096;

pub fn subject(bucket: &str) -> String {
    format!("detect-fleet.cluster.hello.{bucket}")
}

/// Where a stopping instance says goodbye (older versions do not listen: they forget it after
/// a lease, as if it had died).
fn bye_subject(bucket: &str) -> String {
    format!("detect-fleet.cluster.bye.{bucket}")
}

#[derive(Clone)]
pub struct Members {
    me: String,
    heard: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Members {
    /// Subscribes to the hellos; the listening task ends with the subscription.
    pub async fn listen(
        client: &async_nats::Client,
        me: &str,
        bucket: &str,
    ) -> anyhow::Result<Members> {
        // Both subjects (a bucket name has no dots: one token).
        let subject = format!("detect-fleet.cluster.*.{bucket}");
        let bye = bye_subject(bucket);
        let mut sub = client
            .subscribe(subject.clone())
            .await
            .with_context(|| format!("subscribing to {subject}"))?;
        let members = Members {
            me: me.to_owned(),
            heard: Arc::new(Mutex::new(HashMap::new())),
        };
        let heard = Arc::downgrade(&members.heard);
        tokio::spawn(async move {
            let mut ignored = 0u64;
            while let Some(msg) = sub.next().await {
                let Some(heard) = heard.upgrade() else { break };
                let Ok(name) = std::str::from_utf8(&msg.payload) else {
                    continue;
                };
                let mut heard = heard.lock().unwrap_or_else(|e| e.into_inner());
                if msg.subject.as_str() == bye {
                    heard.remove(name);
                    continue;
                }
                if heard.len() >= MAX_MEMBERS && !heard.contains_key(name) {
                    ignored += 1;
                    tracing::warn!(
                        "cluster: {ignored} hellos ignored: more than {MAX_MEMBERS} names"
                    );
                    continue;
                }
                heard.insert(name.to_owned(), Instant::now());
            }
        });
        Ok(members)
    }

    /// Says hello (a lost hello only delays others' counting of this instance).
    pub async fn hello(&self, client: &async_nats::Client, bucket: &str) {
        if let Err(e) = client
            .publish(subject(bucket), self.me.clone().into())
            .await
        {
            tracing::debug!("cluster: hello not sent: {e}");
        }
    }

    /// Says goodbye and flushes it out (bounded: a lost goodbye only delays the others'
    /// counting, by a lease at most).
    pub async fn bye(&self, client: &async_nats::Client, bucket: &str) {
        let sent = async {
            client
                .publish(bye_subject(bucket), self.me.clone().into())
                .await
                .map_err(|e| e.to_string())?;
            client.flush().await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(Duration::from_secs(2), sent).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("cluster: goodbye not sent: {e}"),
            Err(_) => tracing::debug!("cluster: goodbye not flushed within 2 s"),
        }
    }

    /// The number of members heard within `ttl`, this one included; forgets older names.
    pub fn count(&self, ttl: Duration) -> usize {
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        heard.retain(|_, at| now.saturating_duration_since(*at) < ttl);
        heard.len() + usize::from(!heard.contains_key(&self.me))
    }
}
