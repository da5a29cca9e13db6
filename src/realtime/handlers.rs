//! The default namespace: handshake authentication, room membership, presence, and the
//! client-to-server events (`message:*`, `typing:*`, `chat:sync`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use mongodb::bson::oid::ObjectId;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use socketioxide::extract::{AckSender, Event, TryData};
use socketioxide::handler::ConnectHandler;

use super::{Ack, NodeAdapter, Socket, chat_room, session_room, user_room};
use crate::auth::session::{AuthUser, authenticate, bearer};
use crate::domain::call::Action;
use crate::domain::id::parse_id;
use crate::error::{AppError, AppResult};
use crate::service::ai::{self, AiMessageView};
use crate::service::calls;
use crate::service::messages::{self, message_view};
use crate::state::AppState;
use huddle_signaling::protocol::CallView;
use huddle_signaling::protocol::{
    AiAsk, AiAsked, AiSummarized, AnswerAck, CallJoined, CallRef, CallStart, ChatRef, EditMessage, Empty, IceCandidate,
    LayerRequest, MessageRef, MuteRequest, NegotiationAck, OfferRef, Presence, PresenceStatus, ReadRequest, SdpAnswer,
    SdpOffer, SendMessage, SocketEvent, StarMessage, SyncReply, SyncRequest, Typing, Validate,
};
use rtc::peer_connection::transport::RTCIceCandidateInit;

#[derive(Deserialize)]
struct Handshake {
    token: Option<String>,
}

/// Why a handshake was refused; its text is the client's `connect_error` message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// Installs the namespace handlers and starts the adapter (with Redis, its subscriptions).
/// Called once, when the state is built.
pub async fn register(state: AppState) -> anyhow::Result<()> {
    // One state and one route table for every socket: a socket's handlers hold pointers
    // to them, never copies (idle connections stay small).
    let state = Arc::new(state);
    let routes = Arc::new(Routes::all());
    let io = state.realtime.io.clone();
    let on_connect = {
        let state = state.clone();
        move |socket: Socket| {
            let state = state.clone();
            async move { connected(state, socket).await }
        }
    };
    let check = move |socket: Socket, TryData(auth): TryData<Handshake>| {
        let state = state.clone();
        // `auth: { token }` in the handshake; tools that cannot send one (Postman) may use
        // the `Authorization: Bearer` header of the connection request instead.
        let token = auth.ok().and_then(|h| h.token).or_else(|| {
            let header = socket.req_parts().headers.get(http::header::AUTHORIZATION)?;
            bearer(header.to_str().ok()?).map(str::to_string)
        });
        let routes = routes.clone();
        async move { handshake(&state, &routes, &socket, token).await }
    };
    io.ns("/", on_connect.with(check))
        .await
        .map_err(|e| anyhow::anyhow!("Socket.IO adapter: {e}"))
}

/// Verifies `auth: { token }` with the REST token verifier before the socket joins.
async fn handshake(
    state: &Arc<AppState>,
    routes: &Arc<Routes>,
    socket: &Socket,
    token: Option<String>,
) -> Result<(), Refused> {
    let Some(token) = token else {
        return Err(Refused("unauthorized: send auth: { token }".into()));
    };
    match authenticate(state, &token).await {
        Ok(user) if state.realtime.sockets_of(user.id) >= state.config.max_sockets_per_user => {
            metrics::counter!("huddle_socket_refused_too_many_total").increment(1);
            Err(Refused(format!(
                "too_many_sockets: at most {} connections per account",
                state.config.max_sockets_per_user
            )))
        }
        Ok(user) => {
            // Everything a client may rely on right after `connect` happens here, before the
            // server confirms the connection: rooms joined, event handlers in place.
            let chats = state.store.chats.ids_of_member(user.id).await.map_err(|e| {
                tracing::error!(error = %e, "cannot load chats for a socket");
                Refused("internal error".into())
            })?;
            socket.extensions.insert(user);
            socket.extensions.insert(InFlight::default());
            // Each socket is in a room of its own id, as in socket.io: what is meant for one
            // socket (the media task's `rtc:offer`, `track:*`) is addressed to that room.
            socket.join(socket.id.to_string());
            socket.join(user_room(user.id));
            socket.join(session_room(user.session));
            socket.join(chats.into_iter().map(chat_room).collect::<Vec<_>>());
            let (state, routes) = (state.clone(), routes.clone());
            socket.on_fallback(
                move |socket: Socket,
                      Event(event): Event,
                      TryData(payload): TryData<Value>,
                      ack: AckSender<NodeAdapter>| {
                    let (state, routes) = (state.clone(), routes.clone());
                    let payload = payload.map_err(|e| AppError::bad_request(format!("payload: {e}")));
                    async move { routes.dispatch(state, socket, &event, payload, ack).await }
                },
            );
            Ok(())
        }
        Err(AppError::Internal(e)) => {
            tracing::error!(error = ?e, "socket handshake failed");
            Err(Refused("internal error".into()))
        }
        Err(_) => Err(Refused("unauthorized: invalid or expired token".into())),
    }
}

/// Requests of one socket being handled now; past [`MAX_IN_FLIGHT`] further ones are
/// refused as `overloaded` at once, so one client cannot pile up work in the server.
#[derive(Clone, Default)]
struct InFlight(Arc<AtomicUsize>);

/// Requests one socket may have in flight (sent, not yet acknowledged).
pub const MAX_IN_FLIGHT: usize = 32;

/// Holds one request's place among its socket's in-flight requests.
struct Slot(Arc<AtomicUsize>);

impl InFlight {
    fn take(&self) -> Option<Slot> {
        if self.0.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
            self.0.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("huddle_socket_requests_refused_total").increment(1);
            return None;
        }
        Some(Slot(self.0.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn auth_of(socket: &Socket) -> Option<AuthUser> {
    socket.extensions.get::<AuthUser>()
}

/// Presence bookkeeping once the connection is confirmed.
async fn connected(state: Arc<AppState>, socket: Socket) {
    let Some(auth) = auth_of(&socket) else {
        socket.disconnect().ok();
        return;
    };
    let first = state.realtime.socket_opened(auth.id).await;
    let state_on_close = state.clone();
    socket.on_disconnect(move |socket: Socket| {
        let state = state_on_close.clone();
        async move {
            if let Some(auth) = auth_of(&socket)
                && state.realtime.socket_closed(auth.id).await
            {
                presence(&state, auth.id, false).await;
            }
        }
    });
    if first {
        presence(&state, auth.id, true).await;
    }
}

/// The client-to-server request events, in the one table every socket dispatches through.
fn chat_routes(routes: &mut Routes) {
    on(routes, SendMessage::EVENT, |state, user, req: SendMessage| async move {
        let chat = parse_id(&req.chat_id)?;
        let message = messages::SendMessage {
            client_msg_id: Some(req.client_msg_id),
            kind: req.kind,
            content: req.content,
            attachments: req.attachments,
            reply_to: req.reply_to,
        };
        let stored = messages::send(&state, user.id, chat, message).await?;
        Ok(message_view(&stored, Some(user.id)))
    });
    on(routes, EditMessage::EVENT, |state, user, req: EditMessage| async move {
        let edited = messages::edit(&state, user.id, parse_id(&req.message_id)?, req.content).await?;
        Ok(message_view(&edited, Some(user.id)))
    });
    on(routes, "message:delete", |state, user, req: MessageRef| async move {
        let deleted = messages::delete(&state, user.id, parse_id(&req.message_id)?).await?;
        Ok(message_view(&deleted, Some(user.id)))
    });
    on(routes, StarMessage::EVENT, |state, user, req: StarMessage| async move {
        let starred = messages::star(&state, user.id, parse_id(&req.message_id)?, req.starred.unwrap_or(true)).await?;
        Ok(message_view(&starred, Some(user.id)))
    });
    on(routes, "message:read", |state, user, req: ReadRequest| async move {
        messages::read(&state, user.id, parse_id(&req.chat_id)?, req.seq).await
    });
    on(routes, SyncRequest::EVENT, |state, user, req: SyncRequest| async move {
        Ok(SyncReply {
            chats: messages::sync(&state, user.id, req).await?,
        })
    });
    on(routes, CallStart::EVENT, |state, user, req: CallStart| async move {
        let call = calls::start(&state, user.id, parse_id(&req.chat_id)?, req.kind).await?;
        Ok(CallView::from(&call))
    });
    for (event, action) in [
        ("call:accept", Action::Accept),
        ("call:decline", Action::Decline),
        ("call:cancel", Action::Cancel),
        ("call:leave", Action::Leave),
    ] {
        on(routes, event, move |state, user, req: CallRef| async move {
            let call = calls::act(&state, user.id, parse_id(&req.call_id)?, action).await?;
            Ok(CallView::from(&call))
        });
    }
    on(routes, "call:join", |state, user, req: CallRef| async move {
        let call = calls::act(&state, user.id, parse_id(&req.call_id)?, Action::Join).await?;
        let ice = calls::ice_servers(&state, user.id).await?;
        Ok(CallJoined {
            call: CallView::from(&call),
            ice_servers: ice.ice_servers,
            ttl: ice.ttl,
        })
    });
    for (event, typing) in [("typing:start", true), ("typing:stop", false)] {
        on(routes, event, move |state, user, req: ChatRef| async move {
            let chat = parse_id(&req.chat_id)?;
            crate::service::chats::member_chat(&state, chat, user.id).await?;
            let event = Typing {
                chat_id: chat.to_hex(),
                user_id: user.id.to_hex(),
                typing,
            };
            // Everyone in the chat but the typist's own sockets.
            state.realtime.send_to_chat_but(chat, user.id, &event).await;
            Ok(Empty {})
        });
    }
}

/// `rtc:*` and `participant:mute`: media signaling between a call participant and the SFU.
/// Each request is validated, then allowed only to a participant who joined the call.
fn media_routes(routes: &mut Routes) {
    on_socket(
        routes,
        SdpOffer::EVENT,
        |state, user, socket, req: SdpOffer| async move {
            let call = joined_call(&state, user.id, &req, &req.call_id).await?;
            let sources = req.sources.into_iter().map(|s| (s.track_id, s.source)).collect();
            let reply = state.sfu.offer(call, user.id, socket.id, req.sdp, sources).await?;
            Ok(NegotiationAck {
                sdp: reply.answer,
                offer: reply.offer.map(offer_ref),
                withdrawn_offer_id: reply.withdrawn,
            })
        },
    );
    on(routes, SdpAnswer::EVENT, |state, user, req: SdpAnswer| async move {
        let call = joined_call(&state, user.id, &req, &req.call_id).await?;
        let reply = state.sfu.answer(call, user.id, req.offer_id, req.sdp).await?;
        Ok(AnswerAck {
            offer: reply.offer.map(offer_ref),
        })
    });
    on(
        routes,
        IceCandidate::EVENT,
        |state, user, req: IceCandidate| async move {
            let call = joined_call(&state, user.id, &req, &req.call_id).await?;
            let candidate = RTCIceCandidateInit {
                candidate: req.candidate,
                sdp_mid: req.sdp_mid,
                sdp_mline_index: req.sdp_m_line_index,
                username_fragment: None,
                url: None,
            };
            state.sfu.candidate(call, user.id, candidate).await?;
            Ok(Empty {})
        },
    );
    on(
        routes,
        LayerRequest::EVENT,
        |state, user, req: LayerRequest| async move {
            let call = joined_call(&state, user.id, &req, &req.call_id).await?;
            state.sfu.layer(call, user.id, req.track_id, req.layer).await?;
            Ok(Empty {})
        },
    );
    on(routes, MuteRequest::EVENT, |state, user, req: MuteRequest| async move {
        let call = joined_call(&state, user.id, &req, &req.call_id).await?;
        state.sfu.mute(call, user.id, req.source, req.muted).await?;
        Ok(Empty {})
    });
}

fn offer_ref((offer_id, sdp): (u64, String)) -> OfferRef {
    OfferRef { offer_id, sdp }
}

/// `ai:*`: the AI chat. Answers stream to all the user's sockets as `ai:delta`, then
/// `ai:done` or `ai:error`; the acks say which answer to follow.
fn ai_routes(routes: &mut Routes) {
    on(routes, AiAsk::EVENT, |state, user, req: AiAsk| async move {
        let asked = ai::ask(&state, user.id, Some(req.client_msg_id), req.content).await?;
        Ok(AiAsked {
            question: AiMessageView::from(&asked.question),
            message_id: asked.answer_id.to_hex(),
            answer: asked.answer.as_ref().map(AiMessageView::from),
        })
    });
    on(routes, "ai:cancel", |state, user, req: MessageRef| async move {
        ai::cancel(&state, user.id, parse_id(&req.message_id)?)?;
        Ok(Empty {})
    });
    on(routes, "ai:summarize", |state, user, req: ChatRef| async move {
        let summary = ai::summarize(&state, user.id, parse_id(&req.chat_id)?).await?;
        Ok(match summary.asked {
            Some(asked) => AiSummarized {
                unread: summary.unread,
                question: Some(AiMessageView::from(&asked.question)),
                message_id: Some(asked.answer_id.to_hex()),
            },
            None => AiSummarized {
                unread: 0,
                question: None,
                message_id: None,
            },
        })
    });
}

/// Validates a media request and returns its call, if the caller joined it.
async fn joined_call(state: &AppState, user: ObjectId, request: &impl Validate, call_id: &str) -> AppResult<ObjectId> {
    request.validate().map_err(signaling_error)?;
    let call = parse_id(call_id)?;
    calls::check_in_call(state, user, call).await?;
    Ok(call)
}

fn signaling_error(e: huddle_signaling::SignalingError) -> AppError {
    AppError::Rejected {
        code: e.code(),
        message: e.to_string(),
    }
}

/// Tells a user's friends they came online or went offline.
/// With Redis, before this node serves a socket: renews its heartbeat and counts out what an
/// earlier run under its id left behind (telling friends of those then on no node).
pub async fn start_presence(state: &AppState) {
    let Some(shared) = state.realtime.shared_presence().cloned() else {
        return;
    };
    if let Err(e) = shared.heartbeat().await {
        tracing::warn!(error = %e, "presence: heartbeat not renewed");
    }
    let own = shared.node().to_owned();
    count_out(state, &shared, &own).await;
}

/// With Redis: keeps this node's heartbeat, and counts out the nodes whose heartbeat
/// expired, telling their users' friends of those who are then on no node.
pub async fn run_presence(state: AppState) {
    let Some(shared) = state.realtime.shared_presence().cloned() else {
        return;
    };
    loop {
        tokio::time::sleep(super::presence::HEARTBEAT).await;
        if let Err(e) = shared.heartbeat().await {
            tracing::warn!(error = %e, "presence: heartbeat not renewed");
        }
        match shared.dead_nodes().await {
            Ok(dead) => {
                for node in dead {
                    count_out(&state, &shared, &node).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence: cannot look for stopped nodes"),
        }
    }
}

/// Removes `node`'s sockets from the shared counts, and tells the friends of the users it
/// leaves on no node that they went offline.
async fn count_out(state: &AppState, shared: &super::presence::SharedPresence, node: &str) {
    match shared.drop_node(node).await {
        Ok(gone) => {
            if !gone.is_empty() {
                tracing::info!(node = %node, users = gone.len(), "presence: a stopped node's users counted out");
            }
            for user in gone {
                presence(state, user, false).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, node = %node, "presence: cannot count out a node"),
    }
}

async fn presence(state: &AppState, user: ObjectId, online: bool) {
    let friends = match state.store.friends.friend_ids(user).await {
        Ok(friends) => friends,
        Err(e) => {
            tracing::warn!(error = %e, "presence: cannot load friends");
            return;
        }
    };
    let event = Presence {
        user_id: user.to_hex(),
        status: if online {
            PresenceStatus::Online
        } else {
            PresenceStatus::Offline
        },
        last_seen: chrono::Utc::now(),
    };
    for friend in friends {
        state.realtime.send_to_user(friend, &event).await;
    }
}

/// One request event's handler: parses, runs and acks one request.
type Route = Box<
    dyn Fn(Arc<AppState>, Socket, AppResult<Value>, AckSender<NodeAdapter>) -> BoxFuture<'static, ()> + Send + Sync,
>;

/// Every request event by name, built once and shared by all sockets: a socket holds one
/// fallback handler that looks its events up here, not a handler of its own per event.
#[derive(Default)]
struct Routes(HashMap<&'static str, Route>);

impl Routes {
    fn all() -> Self {
        let mut routes = Self::default();
        chat_routes(&mut routes);
        media_routes(&mut routes);
        ai_routes(&mut routes);
        routes
    }

    /// Runs `event`'s route; an unknown event is answered `bad_request` (when the client
    /// asked for an ack).
    async fn dispatch(
        &self,
        state: Arc<AppState>,
        socket: Socket,
        event: &str,
        payload: AppResult<Value>,
        ack: AckSender<NodeAdapter>,
    ) {
        match self.0.get(event) {
            Some(route) => route(state, socket, payload, ack).await,
            None => {
                let name: String = event.chars().take(64).collect();
                let refused: Ack<()> = Err(AppError::bad_request(format!("unknown event: {name}"))).into();
                let _ = ack.send(&refused);
            }
        }
    }
}

/// Registers a request event: parses the payload into `T` (a bad payload is an error ack,
/// never a silent drop), runs `handler` as the socket's user, and acks the result.
fn on<T, F, Fut, R>(routes: &mut Routes, event: &'static str, handler: F)
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(AppState, AuthUser, T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = AppResult<R>> + Send + 'static,
    R: serde::Serialize + Send + 'static,
{
    on_socket(routes, event, move |state, user, _socket, request| {
        handler(state, user, request)
    });
}

/// Like [`on`], for handlers that need the socket itself (media signaling answers on it).
fn on_socket<T, F, Fut, R>(routes: &mut Routes, event: &'static str, handler: F)
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(AppState, AuthUser, Socket, T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = AppResult<R>> + Send + 'static,
    R: serde::Serialize + Send + 'static,
{
    let route: Route = Box::new(move |state, socket, payload, ack| {
        let handler = handler.clone();
        Box::pin(async move {
            let result = async {
                let user = auth_of(&socket).ok_or(AppError::Unauthorized("not signed in"))?;
                let _slot = socket
                    .extensions
                    .get::<InFlight>()
                    .and_then(|f| f.take())
                    .ok_or(AppError::Overloaded {
                        retry_after: messages::OVERLOADED_RETRY,
                    })?;
                let request =
                    serde_json::from_value::<T>(payload?).map_err(|e| AppError::bad_request(e.to_string()))?;
                handler(AppState::clone(&state), user, socket.clone(), request).await
            }
            .await;
            if let Err(e) = ack.send(&Ack::from(result)) {
                tracing::debug!(event, error = %e, "ack not delivered");
            }
        })
    });
    routes.0.insert(event, route);
}

#[cfg(test)]
mod tests {
    use super::Routes;
    use huddle_signaling::protocol::{Direction, catalog};
    use std::collections::BTreeSet;

    #[test]
    fn the_server_answers_exactly_the_requests_the_protocol_defines() {
        let routed: BTreeSet<&str> = Routes::all().0.keys().copied().collect();
        let defined: BTreeSet<&str> = catalog()
            .iter()
            .filter(|s| s.direction == Direction::Request)
            .map(|s| s.name)
            .collect();
        assert_eq!(routed, defined);
    }
}
