//! The call hub: one task owns every live call's signaling session (`huddle-signaling`),
//! mutated through `&mut self` and driven by commands over a channel, by what the media task
//! reports, and by its own timer. It turns session events into Socket.IO emits, and hands
//! Call documents and chat records to a writer task: the hub itself never waits on the
//! database, so one call's writes hold up no other call's signaling.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use huddle_signaling::{CallSession, CallStatus, Millis, SessionConfig, SessionEvent, SignalingError};
use mongodb::bson::{self, oid::ObjectId};
use tokio::sync::{mpsc, oneshot};

pub use crate::domain::call::Action;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::calls::Call;
use crate::store::messages::{CallRecord, Message};
pub use huddle_signaling::protocol::CallView;
use huddle_signaling::protocol::ErrorCode;
use huddle_signaling::protocol::{CallUser, RingExpired, events};

enum Command {
    Start {
        call: Call,
        reply: oneshot::Sender<AppResult<Call>>,
    },
    Act {
        call: ObjectId,
        user: ObjectId,
        action: Action,
        reply: oneshot::Sender<AppResult<Call>>,
    },
    /// The chat of the live call `call`, if `user` has joined it.
    IsJoined {
        call: ObjectId,
        user: ObjectId,
        reply: oneshot::Sender<Option<ObjectId>>,
    },
    /// `user` lost their place in `chat`: out of its live call, if any.
    Remove {
        chat: ObjectId,
        user: ObjectId,
        reply: oneshot::Sender<()>,
    },
    /// The chats of the live calls `user` has joined.
    JoinedChatsOf {
        user: ObjectId,
        reply: oneshot::Sender<Vec<ObjectId>>,
    },
    /// The server is stopping: end every call; answers how many there were.
    EndAll { reply: oneshot::Sender<usize> },
}

/// What the media task tells the hub. It never waits for the hub: these go on a channel
/// the hub selects on.
#[derive(Debug)]
pub enum MediaReport {
    /// `user`'s media connection in `call` failed (ICE consent lost): they leave the call.
    PeerFailed { call: ObjectId, user: ObjectId },
    /// Handling `call`'s media failed (a fault caught in the media task): the call ends.
    RoomFailed { call: ObjectId },
}

/// Where the media task sends its [`MediaReport`]s.
#[derive(Clone, Debug)]
pub struct MediaReports(mpsc::UnboundedSender<MediaReport>);

impl MediaReports {
    pub fn send(&self, report: MediaReport) {
        if self.0.send(report).is_err() {
            tracing::debug!("call hub stopped; media report dropped");
        }
    }
}

/// The handle the rest of the server talks to the hub through.
#[derive(Clone, Debug)]
pub struct CallHub {
    tx: mpsc::Sender<Command>,
    reports: MediaReports,
}

/// Commands waiting for the hub before senders feel back-pressure.
const QUEUE: usize = 1024;

impl CallHub {
    /// The handle, and the receiver [`run`] consumes once the state exists.
    pub fn channel() -> (Self, CallInbox) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (reports, reported) = mpsc::unbounded_channel();
        let hub = Self {
            tx,
            reports: MediaReports(reports),
        };
        (
            hub,
            CallInbox {
                commands: rx,
                reports: reported,
            },
        )
    }

    /// The channel the media task reports on.
    pub fn reports(&self) -> MediaReports {
        self.reports.clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> AppResult<T> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("call hub stopped")))?;
        answer
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("call hub dropped a request")))
    }

    pub async fn start(&self, call: Call) -> AppResult<Call> {
        self.ask(|reply| Command::Start { call, reply }).await?
    }

    pub async fn act(&self, call: ObjectId, user: ObjectId, action: Action) -> AppResult<Call> {
        self.ask(|reply| Command::Act {
            call,
            user,
            action,
            reply,
        })
        .await?
    }

    /// The chat of the live call `call`, if `user` has joined it.
    pub async fn joined_chat(&self, call: ObjectId, user: ObjectId) -> AppResult<Option<ObjectId>> {
        self.ask(|reply| Command::IsJoined { call, user, reply }).await
    }

    /// Takes `user` out of `chat`'s live call at once (they left the chat, were removed, or
    /// are no longer friends with its other member): the SFU drops their peer, the others
    /// are told, and they are refused from then on. Nothing happens without such a call.
    pub async fn remove(&self, chat: ObjectId, user: ObjectId) -> AppResult<()> {
        self.ask(|reply| Command::Remove { chat, user, reply }).await
    }

    pub async fn joined_chats_of(&self, user: ObjectId) -> AppResult<Vec<ObjectId>> {
        self.ask(|reply| Command::JoinedChatsOf { user, reply }).await
    }

    /// For a stopping server: every live call ends as ended by the server (`terminated`),
    /// with its document saved, its record in the chat and `call:ended` to its members;
    /// calls started after this are refused. Answers how many calls were ended.
    pub async fn end_all(&self) -> AppResult<usize> {
        self.ask(|reply| Command::EndAll { reply }).await
    }
}

/// The hub's end of its channels.
pub struct CallInbox {
    commands: mpsc::Receiver<Command>,
    reports: mpsc::UnboundedReceiver<MediaReport>,
}

impl std::fmt::Debug for CallInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallInbox")
    }
}

/// Signaling refusals as client errors; "not a member" reads like a call that does not exist.
fn refused(e: SignalingError) -> AppError {
    match e {
        SignalingError::NotMember => AppError::NotFound,
        other => AppError::Rejected {
            code: other.code(),
            message: other.to_string(),
        },
    }
}

struct Live {
    session: CallSession,
    call: Call,
}

/// A write the hub hands to the writer task, applied in order.
enum Write {
    Save(Box<Call>),
    /// The call ended: its record goes into its chat, then `call:ended` to the chat.
    Ended(Box<Call>),
    /// Runs once every write before it is done: the answer to a request whose writes must
    /// be in the database when its caller hears back (a call that ended, a removal, a
    /// stopping server).
    After(Box<dyn FnOnce() + Send>),
}

struct Hub {
    state: AppState,
    writes: mpsc::UnboundedSender<Write>,
    epoch: Instant,
    config: SessionConfig,
    calls: HashMap<ObjectId, Live>,
    /// The server is stopping: every call was ended and no new one starts.
    closing: bool,
}

fn oid(s: &str) -> Option<ObjectId> {
    ObjectId::parse_str(s).ok()
}

/// Runs the hub until the server stops. Calls a previous run left open are closed first.
pub async fn run(state: AppState, inbox: CallInbox) {
    let CallInbox {
        commands: mut inbox,
        mut reports,
    } = inbox;
    match state.store.calls.end_stale().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(calls = n, "closed calls left open by a previous run"),
        Err(e) => tracing::warn!(error = %e, "could not close stale calls"),
    }
    let config = SessionConfig {
        ring_timeout: Duration::from_secs(state.config.call_ring_timeout_secs),
    };
    let (writes, pending) = mpsc::unbounded_channel();
    tokio::spawn(write_calls(state.clone(), pending));
    let mut hub = Hub {
        writes,
        state,
        epoch: Instant::now(),
        config,
        calls: HashMap::new(),
        closing: false,
    };
    loop {
        let next = hub.calls.values().filter_map(|l| l.session.poll_timeout()).min();
        let sleep = match next {
            Some(at) => tokio::time::sleep_until((hub.epoch + Duration::from_millis(at.0)).into()),
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            command = inbox.recv() => match command {
                Some(command) => hub.handle(command).await,
                None => break,
            },
            Some(report) = reports.recv() => hub.reported(report).await,
            () = sleep => hub.tick().await,
        }
    }
}

impl Hub {
    fn now(&self) -> Millis {
        Millis(self.epoch.elapsed().as_millis() as u64)
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Start { call, reply } => {
                let result = self.start(call).await;
                let _ = reply.send(result);
            }
            Command::Act {
                call,
                user,
                action,
                reply,
            } => {
                let result = self.act(call, user, action).await;
                if result.is_ok() && !self.calls.contains_key(&call) {
                    // The call ended: answer once its document and record are written, so
                    // whoever ended it finds the record in the chat's history.
                    self.write(Write::After(Box::new(move || {
                        let _ = reply.send(result);
                    })));
                } else {
                    let _ = reply.send(result);
                }
            }
            Command::IsJoined { call, user, reply } => {
                let joined = self
                    .calls
                    .get(&call)
                    .filter(|l| l.session.check_joined(&user.to_hex()).is_ok())
                    .map(|l| l.call.chat_id);
                let _ = reply.send(joined);
            }
            Command::Remove { chat, user, reply } => {
                self.remove(chat, user).await;
                self.write(Write::After(Box::new(move || {
                    let _ = reply.send(());
                })));
            }
            Command::EndAll { reply } => {
                self.closing = true;
                let now = self.now();
                let ids: Vec<ObjectId> = self.calls.keys().copied().collect();
                for id in &ids {
                    if let Some(live) = self.calls.get_mut(id) {
                        // Already ending calls need nothing more than their drain.
                        let _ = live.session.terminate(now);
                    }
                    self.drain(*id).await;
                }
                let count = ids.len();
                self.write(Write::After(Box::new(move || {
                    let _ = reply.send(count);
                })));
            }
            Command::JoinedChatsOf { user, reply } => {
                let hex = user.to_hex();
                let chats = self
                    .calls
                    .values()
                    .filter(|l| l.session.is_joined(&hex))
                    .map(|l| l.call.chat_id);
                let _ = reply.send(chats.collect());
            }
        }
    }

    async fn start(&mut self, call: Call) -> AppResult<Call> {
        if self.closing {
            return Err(AppError::Unavailable);
        }
        if self.calls.values().any(|l| l.call.chat_id == call.chat_id) {
            return Err(AppError::Rejected {
                code: ErrorCode::CallInProgress,
                message: "this chat already has a call: join it instead".into(),
            });
        }
        let now = self.now();
        let invitees: Vec<String> = call.invited.iter().map(|i| i.to_hex()).collect();
        let session = CallSession::new(
            self.config,
            call.id.to_hex(),
            call.initiator.to_hex(),
            invitees,
            call.kind,
            now,
        )
        .map_err(refused)?;
        let (id, snapshot) = (call.id, call.clone());
        self.calls.insert(id, Live { session, call });
        let ended = self.drain(id).await;
        Ok(self.latest(id, ended, snapshot))
    }

    /// A call's state after a drain: live, as the drain ended it, or (gone meanwhile) as it
    /// was before.
    fn latest(&self, id: ObjectId, ended: Option<Call>, before: Call) -> Call {
        self.calls.get(&id).map(|l| l.call.clone()).or(ended).unwrap_or(before)
    }

    async fn act(&mut self, id: ObjectId, user: ObjectId, action: Action) -> AppResult<Call> {
        let now = self.now();
        let live = self.calls.get_mut(&id).ok_or(AppError::NotFound)?;
        let hex = user.to_hex();
        if !live.session.is_member(&hex) {
            return Err(AppError::NotFound);
        }
        let session = &mut live.session;
        match action {
            Action::Accept => session.accept(&hex, now),
            Action::Decline => session.decline(&hex, now),
            Action::Cancel => session.cancel(&hex, now),
            Action::Join => session.join(&hex, now),
            Action::Leave => session.leave(&hex, now),
            // Hanging up an unanswered call of one's own is cancelling it.
            Action::End if session.status() == CallStatus::Ringing && session.initiator() == hex => {
                session.cancel(&hex, now)
            }
            Action::End => session.check_joined(&hex).and_then(|()| session.terminate(now)),
        }
        .map_err(refused)?;
        let snapshot = live.call.clone();
        let ended = self.drain(id).await;
        // An ended call is gone from the hub: its last state is what the drain ended it with.
        Ok(self.latest(id, ended, snapshot))
    }

    async fn remove(&mut self, chat: ObjectId, user: ObjectId) {
        let now = self.now();
        let hex = user.to_hex();
        let Some((&id, live)) = self.calls.iter_mut().find(|(_, l)| l.call.chat_id == chat) else {
            return;
        };
        let was_joined = live.session.is_joined(&hex);
        if live.session.remove(&hex, now).is_err() {
            return;
        }
        self.drain(id).await;
        // Their sockets have left the chat's room: they hear it on their own.
        if was_joined {
            let event = CallUser {
                call_id: id.to_hex(),
                user_id: hex,
            };
            self.state
                .realtime
                .to_user(user, events::CALL_PARTICIPANT_LEFT, &event)
                .await;
        }
    }

    async fn tick(&mut self) {
        let now = self.now();
        let due: Vec<ObjectId> = self
            .calls
            .iter()
            .filter(|(_, l)| l.session.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(live) = self.calls.get_mut(&id) {
                live.session.handle_timeout(now);
            }
            self.drain(id).await;
        }
    }

    fn wall_clock(&self, at: Millis) -> bson::DateTime {
        let age = self.epoch.elapsed().saturating_sub(Duration::from_millis(at.0));
        bson::DateTime::from_system_time(std::time::SystemTime::now() - age)
    }

    /// Applies every pending session event of one call: documents, records, emits. Returns
    /// the call's final state when it ended.
    async fn drain(&mut self, id: ObjectId) -> Option<Call> {
        loop {
            let live = self.calls.get_mut(&id)?;
            let event = live.session.poll_event()?;
            let chat = live.call.chat_id;
            let view_id = id.to_hex();
            let realtime = self.state.realtime.clone();
            match event {
                SessionEvent::Ringing { user_ids, .. } => {
                    let view = CallView::from(&live.call);
                    for user in user_ids.iter().filter_map(|u| oid(u)) {
                        realtime.to_user(user, events::CALL_INCOMING, &view).await;
                    }
                }
                SessionEvent::RingExpired { user_ids } => {
                    let event = RingExpired {
                        call_id: view_id,
                        user_ids,
                    };
                    realtime.send_to_chat(chat, &event).await;
                }
                SessionEvent::Accepted { user_id } => {
                    let event = CallUser {
                        call_id: view_id,
                        user_id,
                    };
                    realtime.to_chat(chat, events::CALL_ACCEPTED, &event).await;
                }
                SessionEvent::Declined { user_id } => {
                    let event = CallUser {
                        call_id: view_id,
                        user_id,
                    };
                    realtime.to_chat(chat, events::CALL_DECLINED, &event).await;
                }
                SessionEvent::Ongoing { at } => {
                    let answered = self.wall_clock(at);
                    let live = self.calls.get_mut(&id)?;
                    live.call.status = CallStatus::Ongoing;
                    live.call.answered_at = Some(answered);
                    let call = live.call.clone();
                    self.save(&call).await;
                }
                SessionEvent::ParticipantJoined { user_id } => {
                    if let Some(user) = oid(&user_id)
                        && !live.call.participants.contains(&user)
                    {
                        live.call.participants.push(user);
                    }
                    let call = live.call.clone();
                    self.save(&call).await;
                    let event = CallUser {
                        call_id: view_id,
                        user_id,
                    };
                    realtime.to_chat(chat, events::CALL_PARTICIPANT_JOINED, &event).await;
                }
                SessionEvent::ParticipantLeft { user_id } => {
                    if let Some(user) = oid(&user_id) {
                        self.state.sfu.remove(id, user).await;
                    }
                    let event = CallUser {
                        call_id: view_id,
                        user_id,
                    };
                    realtime.to_chat(chat, events::CALL_PARTICIPANT_LEFT, &event).await;
                }
                SessionEvent::Ended {
                    status,
                    reason,
                    participants,
                    at,
                } => {
                    let ended = self.wall_clock(at);
                    let mut live = self.calls.remove(&id)?;
                    self.state.sfu.end(id).await;
                    live.call.status = status;
                    live.call.end_reason = Some(reason);
                    live.call.ended_at = Some(ended);
                    live.call.participants = participants.iter().filter_map(|p| oid(p)).collect();
                    self.save(&live.call).await;
                    // `call:ended` follows the record: whoever hears it finds the record
                    // in the chat's history.
                    self.write(Write::Ended(Box::new(live.call.clone())));
                    return Some(live.call);
                }
            }
        }
    }

    async fn save(&self, call: &Call) {
        self.write(Write::Save(Box::new(call.clone())));
    }

    fn write(&self, write: Write) {
        if self.writes.send(write).is_err() {
            tracing::error!("the call writer stopped; a call write is lost");
        }
    }

    /// What the media task reported.
    async fn reported(&mut self, report: MediaReport) {
        match report {
            MediaReport::PeerFailed { call, user } => {
                if let Err(e) = self.act(call, user, Action::Leave).await {
                    tracing::debug!(error = %e, "leave after a lost connection");
                }
            }
            MediaReport::RoomFailed { call } => {
                let now = self.now();
                if let Some(live) = self.calls.get_mut(&call) {
                    tracing::warn!(call = %call, "the call's media failed; ending the call");
                    let _ = live.session.terminate(now);
                    self.drain(call).await;
                }
            }
        }
    }
}

/// Applies the hub's writes in order, off the hub's loop.
async fn write_calls(state: AppState, mut writes: mpsc::UnboundedReceiver<Write>) {
    while let Some(write) = writes.recv().await {
        match write {
            Write::Save(call) => {
                if let Err(e) = state.store.calls.save(&call).await {
                    tracing::error!(error = %e, call = %call.id, "call document not saved");
                }
            }
            Write::Ended(call) => {
                record(&state, &call).await;
                state
                    .realtime
                    .to_chat(call.chat_id, events::CALL_ENDED, &CallView::from(&*call))
                    .await;
            }
            Write::After(answer) => answer(),
        }
    }
}

/// Leaves the call's record in its chat, delivered like any message.
async fn record(state: &AppState, call: &Call) {
    let ended = call.ended_at.unwrap_or_else(bson::DateTime::now);
    let from = call.answered_at.unwrap_or(call.started_at);
    let duration_secs = if call.answered_at.is_some() {
        (ended.timestamp_millis() - from.timestamp_millis()).max(0) / 1000
    } else {
        0
    };
    let Ok(Some(chat)) = state.store.chats.by_id(call.chat_id).await else {
        tracing::warn!(call = %call.id, "the call's chat is gone; no record written");
        return;
    };
    let draft = Message {
        id: ObjectId::new(),
        chat_id: chat.id,
        group_id: chat.group_id,
        seq: 0,
        sender: call.initiator,
        client_msg_id: format!("call-{}", call.id.to_hex()),
        content: String::new(),
        kind: crate::domain::chat::MessageType::Call,
        attachments: Vec::new(),
        reply_to: None,
        starred_by: Vec::new(),
        created_at: ended,
        updated_at: ended,
        edited_at: None,
        deleted: false,
        call: Some(CallRecord {
            call_id: call.id,
            kind: call.kind,
            participants: call.participants.clone(),
            started_at: call.started_at,
            ended_at: ended,
            duration_secs,
            status: call.status,
        }),
        notify_pending: false,
    };
    if let Err(e) = crate::service::messages::append(state, draft).await {
        tracing::error!(error = %e, call = %call.id, "call record not written");
    }
}
