//! Alert rules evaluated at each window close.
//!
//! An [`AlertRule`] watches every operation whose name matches its pattern and compares one
//! [`Condition`] with a threshold in each closed window: the error rate, a latency percentile
//! or the count of slow calls. Per (rule, operation) it runs a small state machine:
//!
//! * **pending**: the condition holds, but in fewer than the rule's `for_windows`
//!   consecutive windows; nothing is sent, and a run that ends here sends nothing;
//! * **firing**: the run reached `for_windows`: one [`Alert`] with [`AlertState::Firing`] goes
//!   out, and no other while the condition keeps holding (deduplication);
//! * **resolved**: the first window where the condition does not hold (including a window
//!   where the operation saw no call, or fewer than `min_calls`) sends one
//!   [`AlertState::Resolved`] notice;
//! * **cooldown**: after a resolved notice, a new firing notice for the same rule and
//!   operation is held back until `cooldown` has passed (on window end times); if the
//!   condition still holds then, with a long enough run, it fires then.
//!
//! The notices of one window are delivered together, ordered by rule (in the order the rules
//! were given) and then by operation name.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use ringmeter::alert::{AlertRule, Condition};
//!
//! let rules = [
//!     AlertRule::error_rate("db-errors", "db.*", 0.05).for_windows(3).min_calls(10),
//!     AlertRule::percentile("api-p99", "http.*", 0.99, Duration::from_millis(250))
//!         .cooldown(Duration::from_secs(300)),
//!     AlertRule::slow_calls("slow-payments", "payment.charge", 5),
//! ];
//! for rule in &rules {
//!     rule.validate()?;
//! }
//! assert_eq!(rules[0].condition(), Condition::ErrorRate { above: 0.05 });
//! # Ok::<(), ringmeter::Error>(())
//! ```

mod baseline;
mod budget;
mod eval;
mod file;
mod notice;
mod rule;
mod sample;

pub use budget::BudgetBurn;
pub(crate) use eval::Evaluator;
pub(crate) use file::from_toml;
pub use notice::{Alert, AlertState};
pub use rule::{AlertRule, Condition, Signal};
pub(crate) use sample::OpSample;

#[cfg(test)]
mod tests;
