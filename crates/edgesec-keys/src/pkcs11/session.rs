//! The session pool: a few read/write sessions on one token, shared by every thread, and the
//! login that they share.
//!
//! PKCS#11 login state belongs to the application, not the session: once one session is logged
//! in, every session of the process is, until the last one closes. So the pool keeps one
//! session open only to hold the login, and hands out the others one caller at a time (a
//! `Session` is `Send` but not `Sync`). When the token resets (every session handle becomes
//! invalid, the login is gone) the store calls [`Pool::reset`], which closes what is left, finds
//! the token again by its label, logs in again and starts a new generation; sessions of an old
//! generation that come back later are forgotten, not closed, since a token may have handed their
//! handle numbers to new sessions.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::error::{describe, rv};
use crate::KeyError;

pub(crate) struct Pool {
    ctx: Pkcs11,
    library: PathBuf,
    label: String,
    pin: AuthPin,
    pin_file: PathBuf,
    max: usize,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    generation: u64,
    slot: Slot,
    /// Held only to keep the application logged in.
    login: Option<Session>,
    idle: Vec<Session>,
    /// Sessions of this generation handed out and not yet back.
    out: usize,
}

/// A session lent to one caller; it goes back to the pool when dropped.
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    session: Option<Session>,
    pub(crate) generation: u64,
}

impl Deref for Lease<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        self.session
            .as_ref()
            .expect("a lease holds its session until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.pool.give_back(s, self.generation);
        }
    }
}

/// The slot holding the initialised token labelled `label`. Slot ids are not stable (SoftHSM
/// picks random ones, hardware tokens move between readers), so tokens are found by label.
pub(crate) fn find_slot(ctx: &Pkcs11, library: &str, label: &str) -> Result<Slot, KeyError> {
    let slots = ctx.get_slots_with_token().map_err(|e| {
        KeyError::Backend(format!(
            "cannot list the tokens of PKCS#11 library {library}: {}",
            describe(&e)
        ))
    })?;
    let mut found = Vec::new();
    let mut labels = Vec::new();
    for slot in slots {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        if !info.token_initialized() {
            continue;
        }
        let l = info.label().trim_end().to_owned();
        if l == label {
            found.push(slot);
        }
        labels.push(format!("{l:?}"));
    }
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(KeyError::Backend(format!(
            "no token labelled {label:?} in PKCS#11 library {library}; {}",
            if labels.is_empty() {
                "it has no initialised token".to_owned()
            } else {
                format!("its tokens are {}", labels.join(", "))
            }
        ))),
        _ => Err(KeyError::Backend(format!(
            "{} tokens are labelled {label:?} in PKCS#11 library {library}; labels must be unique",
            found.len()
        ))),
    }
}

impl Pool {
    /// Finds the token, opens the login session and logs in: every start-up failure (token
    /// missing, wrong PIN) surfaces here with a message that names it.
    pub(crate) fn open(
        ctx: Pkcs11,
        library: PathBuf,
        label: String,
        pin: AuthPin,
        pin_file: PathBuf,
        max: usize,
    ) -> Result<Pool, KeyError> {
        let mut pool = Pool {
            ctx,
            library,
            label,
            pin,
            pin_file,
            max: max.max(1),
            state: Mutex::new(State {
                generation: 0,
                slot: Slot::try_from(0u64).expect("a slot id"),
                login: None,
                idle: Vec::new(),
                out: 0,
            }),
            freed: Condvar::new(),
        };
        let slot = pool.find_slot()?;
        let login = pool.login(slot)?;
        let st = pool.state.get_mut().expect("pool lock");
        st.slot = slot;
        st.login = Some(login);
        Ok(pool)
    }

    pub(crate) fn context(&self) -> &Pkcs11 {
        &self.ctx
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn slot(&self) -> Slot {
        self.lock().slot
    }

    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn find_slot(&self) -> Result<Slot, KeyError> {
        find_slot(&self.ctx, &self.library.display().to_string(), &self.label)
    }

    /// A new session on `slot`, logged in as the user (or already logged in through another).
    fn login(&self, slot: Slot) -> Result<Session, KeyError> {
        let failed = |e: &CkError, why: &str| {
            KeyError::Backend(format!(
                "PKCS#11 login to token {:?} failed: {}{why}",
                self.label,
                describe(e)
            ))
        };
        let session = self.ctx.open_rw_session(slot).map_err(|e| failed(&e, ""))?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) => Ok(session),
            Err(e) if rv(&e) == Some(&RvError::UserAlreadyLoggedIn) => Ok(session),
            Err(e) => {
                let why = match rv(&e) {
                    Some(RvError::PinIncorrect) => {
                        format!(" (the PIN in {} is wrong)", self.pin_file.display())
                    }
                    Some(RvError::PinLocked) => {
                        " (the user PIN is locked; the security officer must reset it)".into()
                    }
                    Some(RvError::PinExpired) => " (the user PIN has expired)".into(),
                    _ => String::new(),
                };
                Err(failed(&e, &why))
            }
        }
    }

    /// A session for one caller, waiting while `max` are in use.
    pub(crate) fn take(&self) -> Result<Lease<'_>, CkError> {
        let mut st = self.lock();
        loop {
            if let Some(s) = st.idle.pop() {
                st.out += 1;
                return Ok(self.lease(s, st.generation));
            }
            if st.out < self.max {
                let s = self.ctx.open_rw_session(st.slot)?;
                st.out += 1;
                return Ok(self.lease(s, st.generation));
            }
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn lease(&self, session: Session, generation: u64) -> Lease<'_> {
        Lease {
            pool: self,
            session: Some(session),
            generation,
        }
    }

    fn give_back(&self, session: Session, generation: u64) {
        let mut st = self.lock();
        if generation == st.generation {
            st.out -= 1;
            st.idle.push(session);
        } else {
            // From before a reset: its handle is dead and may be reused by now.
            std::mem::forget(session);
        }
        drop(st);
        self.freed.notify_one();
    }

    /// Re-opens the pool after the token lost its sessions or login, unless another caller
    /// already did since `seen` (the generation the failed operation ran in).
    pub(crate) fn reset(&self, seen: u64) -> Result<(), KeyError> {
        let mut st = self.lock();
        if st.generation != seen {
            return Ok(());
        }
        // Close what is left before anything new is opened, so no handle can be reused yet.
        st.idle.clear();
        st.login = None;
        st.generation += 1;
        st.out = 0;
        self.freed.notify_all();
        let slot = self.find_slot()?;
        let login = self.login(slot)?;
        st.slot = slot;
        st.login = Some(login);
        tracing::info!(token = %self.label, generation = st.generation, "PKCS#11 sessions re-opened and logged in again");
        Ok(())
    }

    /// For tests: how many sessions are open (idle, lent, and the login session).
    #[cfg(test)]
    pub(crate) fn open_sessions(&self) -> usize {
        let st = self.lock();
        st.idle.len() + st.out + usize::from(st.login.is_some())
    }
}
