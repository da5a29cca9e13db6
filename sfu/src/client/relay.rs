//! Reaching the SFU only through a TURN relay (the `rtc` TURN client, with TURN REST
//! credentials), as a client behind a strict NAT would: the allocation, its permissions and
//! relay candidate, and the connection's datagrams in and out through it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Instant;

use log::debug;
use rtc::peer_connection::transport::{CandidateConfig, CandidateRelayConfig, RTCIceCandidate};
use rtc::sansio::Protocol;
use rtc::shared::TransportProtocol;
use rtc::turn::client::{Client as TurnClient, ClientConfig as TurnConfig, Event as TurnEvent};

use super::ClientPeer;
use crate::connection::udp_datagram;

/// A TURN server and the credentials for it.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub server: SocketAddr,
    pub username: String,
    pub password: String,
    /// Peers the relay may exchange datagrams with (the SFU's media address).
    pub permit: Vec<SocketAddr>,
}

/// Where the relay allocation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayState {
    Allocating,
    Allocated(SocketAddr),
    Refused(String),
}

pub(super) struct Relay {
    pub client: TurnClient,
    pub config: RelayConfig,
    pub state: RelayState,
    granted: HashSet<SocketAddr>,
}

impl Relay {
    /// Asks `relay` for an allocation, from the client's `local_addr`.
    pub(super) fn new(
        now: Instant,
        local_addr: SocketAddr,
        relay: &RelayConfig,
    ) -> Result<Self, rtc::shared::error::Error> {
        let server = relay.server.to_string();
        let mut client = TurnClient::new(
            TurnConfig {
                stun_serv_addr: server.clone(),
                turn_serv_addr: server,
                local_addr,
                transport_protocol: TransportProtocol::UDP,
                username: relay.username.clone(),
                password: relay.password.clone(),
                realm: String::new(),
                software: String::new(),
                rto_in_ms: 0,
                allocation_refresh_interval_cap: None,
            },
            rtc::crypto::default_provider().map_err(|e| rtc::shared::error::Error::Other(e.to_string()))?,
        )?;
        client.allocate(now)?;
        Ok(Self {
            client,
            config: relay.clone(),
            state: RelayState::Allocating,
            granted: HashSet::new(),
        })
    }

    /// Sends a datagram of the client's connection to `to` through the relay, once the
    /// allocation and a permission for `to` are there.
    pub(super) fn send(&mut self, now: Instant, name: &str, to: SocketAddr, payload: &[u8]) {
        let RelayState::Allocated(relayed) = self.state else {
            return;
        };
        // Without a permission the relay would drop it; ICE retries.
        if !self.granted.contains(&to) {
            return;
        }
        let sent = self.client.relay(relayed).and_then(|mut r| r.send_to(now, payload, to));
        if let Err(err) = sent {
            debug!("{name}: relay send: {err}");
        }
    }
}

impl ClientPeer {
    /// Applies the TURN client's events: the allocation (then the relay candidate and the
    /// permissions), and data relayed from peers.
    pub(super) fn drain_relay(&mut self, now: Instant) {
        let Some(relay) = self.relay.as_mut() else {
            return;
        };
        while let Some(event) = relay.client.poll_event() {
            match event {
                TurnEvent::AllocateResponse(_, relayed) => {
                    relay.state = RelayState::Allocated(relayed);
                    for peer in relay.config.permit.clone() {
                        if let Err(err) = relay
                            .client
                            .relay(relayed)
                            .and_then(|mut r| r.create_permission(now, peer))
                        {
                            debug!("{}: permission for {peer}: {err}", self.config.name);
                        }
                    }
                    let candidate = CandidateRelayConfig {
                        base_config: CandidateConfig {
                            network: "udp".to_owned(),
                            address: relayed.ip().to_string(),
                            port: relayed.port(),
                            component: 1,
                            ..Default::default()
                        },
                        rel_addr: self.config.local_addr.ip().to_string(),
                        rel_port: self.config.local_addr.port(),
                        ..Default::default()
                    }
                    .new_candidate_relay()
                    .and_then(|c| RTCIceCandidate::from(&c).to_json());
                    match candidate {
                        Ok(init) => {
                            if let Err(err) = self.pc.add_local_candidate(init.clone()) {
                                debug!("{}: relay candidate: {err}", self.config.name);
                            }
                            self.candidates.push_back(init);
                        }
                        Err(err) => debug!("{}: relay candidate: {err}", self.config.name),
                    }
                }
                TurnEvent::AllocateError(_, err) => relay.state = RelayState::Refused(err.to_string()),
                TurnEvent::TransactionTimeout(_) if relay.state == RelayState::Allocating => {
                    relay.state = RelayState::Refused("no answer from the TURN server".into());
                }
                TurnEvent::CreatePermissionResponse(_, peer) => {
                    relay.granted.insert(peer);
                }
                TurnEvent::DataIndicationOrChannelData(_, from, data) => {
                    if let RelayState::Allocated(relayed) = relay.state {
                        let read = self.pc.handle_read(udp_datagram(now, relayed, from, data));
                        if let Err(err) = read {
                            debug!("{}: relayed datagram refused: {err}", self.config.name);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}
