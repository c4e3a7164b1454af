//! The queue's errors: each says what failed and what to do.

/// An error of the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker could not be reached.
    #[error(
        "cannot reach NATS at {url}: {reason}. Start a JetStream broker (`nats-server -js`) there \
         or pass the right address to --nats"
    )]
    Connect {
        /// The address tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// A setting is out of range.
    #[error("{setting}: {reason}")]
    Setting {
        /// The setting.
        setting: &'static str,
        /// What is wrong and what would be right.
        reason: String,
    },
    /// The broker answered an operation with an error (or did not answer in time).
    #[error("NATS {what} failed: {reason}")]
    Broker {
        /// The operation.
        what: String,
        /// The broker's or client's reason.
        reason: String,
    },
    /// A message or record in the broker is not what cogview writes.
    #[error("{what} is not a cogview job message: {reason}")]
    Message {
        /// Which message.
        what: String,
        /// Why it does not parse.
        reason: String,
    },
}

impl QueueError {
    /// A broker operation's failure.
    pub fn broker(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        QueueError::Broker {
            what: what.into(),
            reason: e.to_string(),
        }
    }
}
