#include "mirrord/connection.h"

#include <utility>

#include "common/endian.h"
#include "common/quote.h"
#include "mirrord/log.h"

namespace mirror::d {

namespace asio = boost::asio;
using common::WireError;

namespace {

constexpr uint32_t kMaxHandshakeFrame = 8192;  // HELLO, AUTH or an ERROR (4 KiB of text)

std::string EncodeOrEmpty(const common::Message& msg) {
  common::Result<std::string> bytes = common::EncodeFrame(msg);
  return bytes.ok() ? std::move(bytes).value() : std::string();
}

// Bytes of the first `n` records of a tiled batch.
size_t RecordsPrefixBytes(std::string_view records, uint32_t n) {
  size_t pos = 0;
  for (uint32_t i = 0; i < n; ++i) pos += common::LoadLE<uint32_t>(records.data() + pos);
  return pos;
}

}  // namespace

Connection::Connection(asio::ip::tcp::socket socket, const MirrordConfig& config,
                       StoreRegistry& registry, asio::thread_pool& blocking)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      config_(config),
      registry_(registry),
      blocking_(blocking),
      handshake_([&registry](std::string_view id) { return registry.Lookup(id); }) {
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
}

void Connection::Start() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    boost::system::error_code ec;
    self->socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    self->ArmTimer(std::chrono::steady_clock::now() + self->config_.handshake_timeout);
    self->ReadHeader();
  });
}

void Connection::Shutdown() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    if (self->phase_ == Phase::kClosed) return;
    self->Refuse({WireError::kShuttingDown, "mirrord is stopping; reconnect later"});
  });
}

void Connection::RefuseIfSource(const std::string& source_id, const Refusal& refusal) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), source_id, refusal] {
    if (self->phase_ == Phase::kClosed) return;
    const std::string& who =
        self->source_id_.empty() ? self->handshake_.hello().source_id : self->source_id_;
    if (who == source_id) self->Refuse(refusal);
  });
}

// ---- Reading frames

void Connection::ReadHeader() {
  if (phase_ == Phase::kClosed) return;
  // The idle timeout runs from here (the previous frame was handled). Only the deadline
  // moves: re-arming the timer per frame would cancel its wait, and every cancelled wait
  // runs a handler (often on the other I/O thread). OnTimer re-arms it for what is left.
  // After a refusal, Refuse's timer stays.
  if (phase_ == Phase::kStreaming && config_.idle_timeout.count() > 0 && !close_after_write_) {
    last_activity_ = std::chrono::steady_clock::now();
    if (!idle_timer_armed_) {
      idle_timer_armed_ = true;
      ArmTimer(last_activity_ + config_.idle_timeout);
    }
  }
  asio::async_read(socket_, asio::buffer(header_),
                   [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                     self->OnHeader(ec);
                   });
}

void Connection::OnHeader(const boost::system::error_code& ec) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return Close(ec == asio::error::eof ? "peer closed" : "read: " + ec.message());
  // Before authentication only small frames (8 KiB) are read: a stranger cannot make us
  // allocate max_frame bytes per connection.
  common::FrameLimits limits{phase_ == Phase::kHandshake ? kMaxHandshakeFrame
                                                         : config_.max_frame_bytes};
  WireError refusal = WireError::kProtocol;
  common::Result<common::FrameHeader> header =
      common::DecodeFrameHeader(std::string_view(header_.data(), header_.size()), limits, &refusal);
  if (!header.ok()) return Refuse({refusal, header.status().message()});
  frame_ = *header;
  payload_.resize(frame_.length);  // bounded by max_frame_bytes
  asio::async_read(socket_, asio::buffer(payload_),
                   [self = shared_from_this()](const boost::system::error_code& e, size_t) {
                     self->OnPayload(e);
                   });
}

void Connection::OnPayload(const boost::system::error_code& ec) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return Close("read: " + ec.message());
  std::string_view payload(payload_.data(), payload_.size());
  if (common::Status s = common::CheckFramePayload(frame_, payload); !s.ok()) {
    return Refuse({WireError::kBadCrc, s.message()});
  }
  common::Result<common::Message> msg = common::DecodeMessage(frame_.type, payload);
  if (!msg.ok()) return Refuse({WireError::kProtocol, msg.status().message()});
  if (phase_ == Phase::kHandshake) return OnHandshakeFrame(*msg);
  OnStreamFrame(*msg);
}

// ---- Handshake

void Connection::OnHandshakeFrame(const common::Message& msg) {
  std::string reply = handshake_.OnFrame(msg);
  const std::string who = handshake_.hello().source_id;
  switch (handshake_.state()) {
    case common::HandshakeState::kFailed:
      LogSource(LogLevel::kWarning, who,
                "handshake from " + peer_ +
                    " refused: " + std::string(common::WireErrorName(handshake_.error_code())) +
                    ": " + handshake_.error().message());
      if (reply.empty()) return Close("handshake failed");
      close_after_write_ = true;
      return Send(std::move(reply));
    case common::HandshakeState::kDone:
      welcome_ = std::move(reply);
      source_id_ = who;
      phase_ = Phase::kStarting;
      return StartSession();
    default:
      Send(std::move(reply));
      return ReadHeader();
  }
}

void Connection::StartSession() {
  const common::HelloMsg hello = handshake_.hello();
  std::weak_ptr<Connection> weak = weak_from_this();
  auto on_durable = [weak, ex = socket_.get_executor()](uint64_t, uint64_t) {
    asio::post(ex, [weak] {
      if (auto self = weak.lock()) self->WantAck();
    });
  };
  asio::post(blocking_, [self = shared_from_this(), hello, on_durable] {
    Refusal refusal{WireError::kInternal, ""};
    SourceStore* store = nullptr;
    common::Result<SessionInfo> info = common::Status::Aborted("not started");
    common::Result<SourceStore*> opened = self->registry_.GetOrOpen(hello.source_id);
    if (!opened.ok()) {
      refusal.message = opened.status().ToString();
      info = opened.status();
    } else {
      store = *opened;
      info = store->StartSession(hello.volume_id, hello.epoch, on_durable, &refusal,
                                 (hello.flags & common::kHelloWantsDurable) != 0);
    }
    asio::post(self->socket_.get_executor(), [self, info = std::move(info), store, refusal] {
      self->OnSessionStarted(info, store, refusal);
    });
  });
}

void Connection::OnSessionStarted(common::Result<SessionInfo> info, SourceStore* store,
                                  Refusal refusal) {
  if (phase_ == Phase::kClosed || close_after_write_) {
    if (info.ok()) store->EndSession(info->token);
    return;
  }
  if (!info.ok()) return Refuse(refusal);
  store_ = store;
  token_ = info->token;
  // The handshake's WELCOME carries the seqs as they were at HELLO; the session's are
  // current (everything received is now durable). The server proof does not cover them.
  common::Result<common::Message> msg = common::DecodeFrame(welcome_);
  if (!msg.ok() || !std::holds_alternative<common::WelcomeMsg>(*msg)) {
    return Refuse({WireError::kInternal, "cannot re-read our own WELCOME"});
  }
  common::WelcomeMsg welcome = std::get<common::WelcomeMsg>(*msg);
  welcome.durable_seq = info->durable_seq;
  welcome.resume_seq = info->needs_resync ? 0 : info->durable_seq + 1;
  welcome.applied_seq = info->applied_seq;
  welcome.epoch = info->epoch;
  phase_ = Phase::kStreaming;
  timer_.cancel();  // the handshake's timeout ends; ReadHeader starts the idle one (if any)
  registry_.SetConnected(source_id_, token_, peer_);
  LogSource(LogLevel::kNotice, source_id_,
            "connected from " + peer_ + " (epoch " + std::to_string(info->epoch) +
                ", resume at seq " + std::to_string(welcome.resume_seq) + ")");
  Send(EncodeOrEmpty(welcome));
  ReadHeader();
}

// ---- Streaming

void Connection::OnStreamFrame(const common::Message& msg) {
  if (phase_ != Phase::kStreaming) {
    return Refuse({WireError::kProtocol, "frame before the session started"});
  }
  if (const auto* records = std::get_if<common::RecordsMsg>(&msg)) return OnRecords(*records);
  if (const auto* sync = std::get_if<common::SyncMsg>(&msg)) {
    AddJob(Job(Job::Kind::kSync, sync->cp_seq));
    return ReadHeader();
  }
  if (const auto* resync = std::get_if<common::ResyncMsg>(&msg)) {
    // Nothing more is read, and no ACK about the old stream is sent, until it is done.
    resync_running_ = true;
    ack_wanted_ = false;
    return AddJob(Job(Job::Kind::kResync, resync->next_seq));
  }
  if (std::holds_alternative<common::ResyncDoneMsg>(msg) ||
      std::holds_alternative<common::ManifestRequestMsg>(msg) ||
      std::holds_alternative<common::SumsRequestMsg>(msg)) {
    return OnQueryFrame(msg);
  }
  if (const auto* ping = std::get_if<common::PingMsg>(&msg)) {
    Send(EncodeOrEmpty(common::PongMsg{ping->token}));
    return ReadHeader();
  }
  if (std::get_if<common::PongMsg>(&msg) != nullptr) return ReadHeader();
  if (const auto* err = std::get_if<common::ErrorMsg>(&msg)) {
    LogSource(LogLevel::kWarning, source_id_,
              "source sent ERROR " + std::string(common::WireErrorName(err->code)) + ": " +
                  common::QuoteForMessage(err->message));
    return Close("peer error");
  }
  Refuse({WireError::kProtocol, "unexpected " +
                                    std::string(common::FrameTypeName(common::MessageType(msg))) +
                                    " frame after the handshake"});
}

void Connection::OnRecords(const common::RecordsMsg& msg) {
  if (common::LoadLE<uint64_t>(msg.records.data() + 16) != msg.first_seq) {
    return Refuse({WireError::kProtocol, "records frame says first_seq " +
                                             std::to_string(msg.first_seq) +
                                             " but its first record has another seq"});
  }
  pending_records_ = msg.records;
  pending_count_ = msg.count;
  TryReceive();
}

void Connection::TryReceive() {
  waiting_for_room_ = false;
  if (phase_ == Phase::kClosed) return;
  ReceiveResult r = store_->Receive(token_, pending_records_, pending_count_);
  pending_records_.remove_prefix(RecordsPrefixBytes(pending_records_, r.accepted));
  pending_count_ -= r.accepted;
  if (r.accepted > 0) WantAck();
  if (r.error) return Refuse(*r.error);
  if (r.need_room) {
    // Backpressure: no read until the flusher frees a half; no idle timeout meanwhile.
    waiting_for_room_ = true;
    timer_.cancel();
    idle_timer_armed_ = false;  // ReadHeader arms it again
    // The callback owns the connection: while it waits for room nothing else does (no
    // read or timer is pending), and the store calls every waiter, also when it stops.
    store_->WhenRoom([self = shared_from_this()] {
      asio::post(self->socket_.get_executor(), [self] { self->TryReceive(); });
    });
    return;
  }
  ReadHeader();
}

// ---- Writing

void Connection::WantAck() {
  if (phase_ != Phase::kStreaming || resync_running_) return;
  ack_wanted_ = true;
  KickWrite();
}

void Connection::Send(std::string frame) {
  if (frame.empty() || phase_ == Phase::kClosed) return;
  out_.push_back(std::move(frame));
  KickWrite();
}

void Connection::KickWrite() {
  if (write_busy_ || phase_ == Phase::kClosed) return;
  if (!out_.empty()) {
    writing_ = std::move(out_.front());
    out_.pop_front();
  } else if (close_after_write_) {
    return Close("refused");
  } else if (ack_wanted_ && (manifests_.empty() || !last_was_ack_)) {
    // ACKs and MANIFEST frames take turns, so a source that streams records while it
    // reads a manifest starves neither.
    ack_wanted_ = false;
    last_was_ack_ = true;
    const auto [received, durable] = store_->ReceivedAndDurable();
    writing_ = EncodeOrEmpty(common::AckMsg{received, durable});
  } else if (!manifests_.empty()) {
    last_was_ack_ = false;
    writing_ = NextManifestFrame();
  } else {
    return;
  }
  write_busy_ = true;
  asio::async_write(socket_, asio::buffer(writing_),
                    [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                      self->write_busy_ = false;
                      if (ec) return self->Close("write: " + ec.message());
                      self->KickWrite();
                    });
}

void Connection::Refuse(const Refusal& refusal) {
  if (phase_ == Phase::kClosed || close_after_write_) return;
  LogSource(refusal.code == WireError::kShuttingDown ? LogLevel::kInfo : LogLevel::kWarning,
            source_id_.empty() ? handshake_.hello().source_id : source_id_,
            "refused " + peer_ + ": " + std::string(common::WireErrorName(refusal.code)) + ": " +
                refusal.message);
  std::string msg = refusal.message.substr(0, common::kMaxErrorMessageBytes);
  // Nothing but the ERROR goes out after a refusal: drop queued ACKs, frames and jobs.
  out_.clear();
  ack_wanted_ = false;
  manifests_.clear();
  jobs_.clear();
  close_after_write_ = true;
  out_.push_back(EncodeOrEmpty(common::ErrorMsg{refusal.code, msg}));
  // A peer that does not read cannot keep us.
  idle_timer_armed_ = false;
  ArmTimer(std::chrono::steady_clock::now() + std::chrono::seconds(5));
  KickWrite();
}

void Connection::Close(const std::string& why) {
  if (phase_ == Phase::kClosed) return;
  const bool was_streaming = phase_ == Phase::kStreaming;
  phase_ = Phase::kClosed;
  boost::system::error_code ec;
  timer_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  if (store_ != nullptr) {
    store_->EndSession(token_);
    registry_.SetDisconnected(source_id_, token_);
  }
  if (was_streaming) LogSource(LogLevel::kNotice, source_id_, "disconnected: " + why);
}

// ---- Timeouts

void Connection::ArmTimer(std::chrono::steady_clock::time_point at) {
  timer_.expires_at(at);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->OnTimer();
  });
}

void Connection::OnTimer() {
  if (phase_ == Phase::kClosed) return;
  const auto now = std::chrono::steady_clock::now();
  // A handler queued before the timer was re-armed or cancelled: not a timeout.
  if (timer_.expiry() > now) return;
  if (waiting_for_room_) return;
  if (close_after_write_) return Close("peer did not read our ERROR");
  // Frames came after the timer was armed: the idle deadline moved on.
  if (idle_timer_armed_ && last_activity_ + config_.idle_timeout > now) {
    return ArmTimer(last_activity_ + config_.idle_timeout);
  }
  // The source waits for a job's answer (it should PING meanwhile, but an apply or a tree
  // walk may take longer than it expects).
  if (job_running_ || !jobs_.empty()) return ArmTimer(now + config_.idle_timeout);
  if (phase_ == Phase::kStreaming) {
    LogSource(LogLevel::kWarning, source_id_, "idle for too long; closing " + peer_);
    return Close("idle timeout");
  }
  Log(LogLevel::kWarning, "connection from " + peer_ + ": handshake timed out");
  Close("handshake timeout");
}

}  // namespace mirror::d
