//! Containing panics: a bug triggered by one object must cost that object's work, never the
//! loop that serves every other object.
//!
//! Every long-lived loop (controller workers, informer handlers, the scheduler, node and proxy
//! workers) runs each unit of work through [`catch`] or [`catch_sync`], logs the panic with
//! [`message`] and goes on with the next unit, retrying the failed one with back-off.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

use futures::FutureExt;

/// The text a panic was raised with (`panic!("...")`), or a placeholder for other payloads.
pub fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs `work` to completion; a panic inside it becomes `Err(message)`.
///
/// The caller must not rely on state `work` left half-changed: it should drop or rebuild it.
pub async fn catch<F: Future>(work: F) -> Result<F::Output, String> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|payload| message(&*payload))
}

/// Runs `work`; a panic inside it becomes `Err(message)`.
pub fn catch_sync<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| message(&*payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_static_and_formatted_panics() {
        assert_eq!(catch_sync(|| panic!("plain")), Err::<(), _>("plain".into()));
        let n = 3;
        assert_eq!(
            catch_sync(|| panic!("formatted {n}")),
            Err::<(), _>("formatted 3".into())
        );
        assert_eq!(
            catch_sync(|| std::panic::panic_any(7u8)),
            Err::<(), _>("a panic without a message".into())
        );
        assert_eq!(catch_sync(|| 5), Ok(5));
    }

    #[tokio::test]
    async fn futures_that_panic_become_errors() {
        let overflow = |x: u32| async move { x.checked_add(u32::MAX).expect("overflow") };
        assert_eq!(catch(overflow(1)).await, Err("overflow".to_string()));
        assert_eq!(catch(overflow(0)).await, Ok(u32::MAX));
    }
}
