//! The simulation's stand-in for signalling: it prepares peers from clients' offers and hands
//! them to cores with the same commands `signal` sends (`Add`, `OpenPipe`, `IceRestart`,
//! `SetLayer`, `SetSpotlight`), at once and on virtual time. It must never decide anything
//! about media; it only does what the HTTP side would have done for the same request.

use std::net::SocketAddr;
use std::time::Duration;

use classrelay::sfu::{prepare_peer_at, AddError, Command, Follow, PeerKind, PeerSetup};
use str0m::change::SdpOffer;
use str0m::format::Codec;

use crate::client::{Client, Out, Publish};
use crate::worker::{CoreConfig, SimCore};
use crate::world::{Who, World};

/// What a case needs to say about a new viewer.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Which publishers it receives.
    pub follow: Follow,
    /// Its participant id.
    pub part: Option<String>,
    /// Video codecs it offers (empty: str0m's defaults).
    pub codecs: Vec<Codec>,
}

/// How a peer joins: what signalling would put in its `Command::Add`.
struct Join<'a> {
    room: &'a str,
    role: PeerKind,
    part: Option<String>,
    follow: Follow,
    piped_from: Option<usize>,
}

impl World {
    /// Starts `n` cores (worker `i` at 10.9.0.`i+1`:3478).
    pub fn start_cores(&mut self, n: usize, cfg: CoreConfig, seed: u64) {
        for i in 0..n {
            let addr: SocketAddr = format!("10.9.0.{}:3478", i + 1).parse().unwrap();
            let core = SimCore::new(i, n, addr, cfg, seed ^ i as u64, self.now);
            self.add_core(core);
        }
    }

    /// The address of the next client: one host per client, so each has its own access link.
    pub fn next_client_addr(&self) -> SocketAddr {
        let n = self.clients.len();
        format!("10.0.{}.{}:5000", n / 200, n % 200 + 1)
            .parse()
            .unwrap()
    }

    fn setup(&self, core: usize) -> PeerSetup {
        PeerSetup {
            cert: self.cert.clone(),
            candidate: self.cores[core].addr,
            direct_srtp: self.cores[core].direct_srtp,
        }
    }

    /// Adds a prepared client's peer to `core`: `Command::Add`, then the answer to the client.
    fn add(&mut self, mut c: Client, offer: &str, core: usize, j: Join) -> Result<usize, AddError> {
        let Join {
            room,
            role,
            part,
            follow,
            piped_from,
        } = j;
        let mut peer = prepare_peer_at(role, offer, &self.setup(core), self.now)
            .expect("the offer is accepted");
        peer.part = part;
        peer.follow = follow;
        let answer = peer.answer.clone();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let now = self.now;
        let mut out = Out::new();
        self.cores[core].handle_command(
            now,
            Command::Add {
                session: c.name.clone(),
                room: room.to_string(),
                role,
                peer: Box::new(peer),
                piped_from,
                reply: tx,
            },
            &mut out,
        );
        self.flush(&mut out);
        self.exchange();
        rx.try_recv().expect("the core answers an Add at once")?;
        c.accept_answer(&answer, now, &mut out);
        self.flush(&mut out);
        Ok(self.add_client(c))
    }

    /// A publisher joins `room` on `core`; its client index.
    pub fn publish(&mut self, core: usize, room: &str, name: &str, opts: Publish) -> usize {
        let part = opts.part.clone();
        let (c, offer) = Client::publisher(name, self.next_client_addr(), self.now, opts);
        let j = Join {
            room,
            role: PeerKind::Publisher,
            part,
            follow: Follow::Any,
            piped_from: None,
        };
        self.add(c, &offer, core, j)
            .expect("a publisher is always added")
    }

    /// A viewer joins `room` on `core`, whose publishers are on core `home` (another one: the
    /// room is piped there first, as signalling does). Its client index, or the core's refusal.
    pub fn view(
        &mut self,
        core: usize,
        home: usize,
        room: &str,
        name: &str,
        v: View,
    ) -> Result<usize, AddError> {
        let (c, offer) = Client::viewer(name, self.next_client_addr(), self.now, &v.codecs);
        let piped_from = (core != home).then_some(home);
        if let Some(home) = piped_from {
            let (tx, mut rx) = tokio::sync::oneshot::channel();
            let mut out = Out::new();
            let now = self.now;
            self.cores[home].handle_command(
                now,
                Command::OpenPipe {
                    room: room.to_string(),
                    to: core,
                    reply: tx,
                },
                &mut out,
            );
            self.flush(&mut out);
            self.exchange();
            rx.try_recv().expect("the home core opens the pipe at once");
        }
        let j = Join {
            room,
            role: PeerKind::Subscriber,
            part: v.part,
            follow: v.follow,
            piped_from,
        };
        self.add(c, &offer, core, j)
    }

    /// `POST …/layer`: viewer session `name` on `core` wants layer `rid` (`None`: automatic).
    pub fn set_layer(&mut self, core: usize, name: &str, rid: Option<&str>) {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let mut out = Out::new();
        let now = self.now;
        self.cores[core].handle_command(
            now,
            Command::SetLayer {
                session: name.to_string(),
                rid: rid.map(str::to_string),
                reply: tx,
            },
            &mut out,
        );
        self.flush(&mut out);
        self.exchange();
        assert!(
            rx.try_recv().expect("answered at once"),
            "session {name} known"
        );
    }

    /// Puts `part` on the big screen of `room` on `core`.
    pub fn set_spotlight(&mut self, core: usize, room: &str, part: Option<&str>) {
        let mut out = Out::new();
        let now = self.now;
        self.cores[core].handle_command(
            now,
            Command::SetSpotlight {
                room: room.to_string(),
                part: part.map(str::to_string),
            },
            &mut out,
        );
        self.flush(&mut out);
        self.exchange();
    }

    /// Client `ci` (on `core`) restarts ICE with new credentials from `new_addr`: the
    /// re-offer goes to the core (`Command::IceRestart`), the answer back to the client.
    pub fn ice_restart(&mut self, ci: usize, core: usize, new_addr: SocketAddr) {
        let now = self.now;
        let mut out = Out::new();
        let offer: SdpOffer = self.clients[ci].ice_restart(new_addr, now, &mut out);
        self.flush(&mut out);
        self.route(new_addr, Who::Client(ci));
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let session = self.clients[ci].name.clone();
        self.cores[core].handle_command(
            now,
            Command::IceRestart {
                session,
                offer: Box::new(offer),
                reply: tx,
            },
            &mut out,
        );
        self.flush(&mut out);
        let answer = rx
            .try_recv()
            .expect("answered at once")
            .expect("the restart is accepted");
        self.clients[ci].accept_answer(&answer, now, &mut out);
        self.flush(&mut out);
    }

    /// Runs until every client is connected (or `limit` passes); whether they all are.
    pub fn connect_all(&mut self, limit: Duration) -> bool {
        self.run_until(limit, |w| {
            w.clients.iter().all(|c| c.connected_at.is_some())
        })
    }
}
