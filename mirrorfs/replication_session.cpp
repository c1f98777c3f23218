#include "mirrorfs/replication_session.h"

#include "common/quote.h"
#include "mirrorfs/log.h"

namespace mirror::fs {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// Frames mirrord sends: small ones (ACK, SYNC_DONE, PONG, ERROR), and MANIFEST and SUMS
// of at most 4 MiB of entries or sums.
constexpr uint32_t kMaxIncomingFrame = common::kMaxQueryReplyPayload;

// What an ERROR from mirrord means for the link: fenced (stale epoch), a refusal that
// would come again on every retry, or a passing trouble.
LinkState StateAfterRefusal(common::WireError code) {
  switch (code) {
    case common::WireError::kStaleEpoch:
      return LinkState::kFenced;
    case common::WireError::kShuttingDown:
    case common::WireError::kInternal:
      return LinkState::kDisconnected;
    default:
      return LinkState::kRefused;
  }
}

}  // namespace

ReplicationClient::Session::Session(ReplicationClient& client, asio::io_context& io)
    : client_(client),
      resolver_(io),
      socket_(io),
      liveness_(io),
      // Only durable writers wait for mirrord's disk; sync and async ones let it flush
      // lazily (their consistency points' SYNC flushes at once).
      handshake_(client.identity_.source_id, client.identity_.volume_id, client.identity_.epoch,
                 client.config_.secret,
                 client.config_.mode == AckMode::kDurable ? common::kHelloWantsDurable : 0) {}

void ReplicationClient::Session::Start() {
  last_heard_ = last_sent_ = Clock::now();
  ArmLiveness();
  resolver_.async_resolve(
      client_.config_.host, std::to_string(client_.config_.port),
      [self = shared_from_this()](const boost::system::error_code& ec,
                                  asio::ip::tcp::resolver::results_type results) {
        self->OnResolved(ec, std::move(results));
      });
}

void ReplicationClient::Session::OnResolved(const boost::system::error_code& ec,
                                            asio::ip::tcp::resolver::results_type results) {
  if (closed()) return;
  if (ec)
    return Close(LinkState::kDisconnected, "resolve " + client_.config_.host + ": " + ec.message());
  asio::async_connect(
      socket_, results,
      [self = shared_from_this()](const boost::system::error_code& e,
                                  const asio::ip::tcp::endpoint&) { self->OnConnected(e); });
}

void ReplicationClient::Session::OnConnected(const boost::system::error_code& ec) {
  if (closed()) return;
  if (ec) return Close(LinkState::kDisconnected, "connect: " + ec.message());
  boost::system::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  phase_ = Phase::kHandshake;
  common::Result<std::string> hello = handshake_.Start();
  if (!hello.ok()) return Close(LinkState::kDisconnected, hello.status().ToString());
  SendControl(std::move(hello).value());
  ReadFrame();
}

// ---- Reading

void ReplicationClient::Session::ReadFrame() {
  asio::async_read(
      socket_, asio::buffer(header_),
      [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
        if (self->closed()) return;
        if (ec) {
          return self->Close(LinkState::kDisconnected, ec == asio::error::eof
                                                           ? "mirrord closed the connection"
                                                           : "read: " + ec.message());
        }
        auto header = common::DecodeFrameHeader(
            std::string_view(self->header_.data(), self->header_.size()), {kMaxIncomingFrame});
        if (!header.ok()) return self->Close(LinkState::kDisconnected, header.status().message());
        self->payload_.resize(header->length);
        asio::async_read(self->socket_, asio::buffer(self->payload_),
                         [self, h = *header](const boost::system::error_code& e, size_t) {
                           if (self->closed()) return;
                           if (e)
                             return self->Close(LinkState::kDisconnected, "read: " + e.message());
                           std::string_view payload(self->payload_);
                           common::Status crc = common::CheckFramePayload(h, payload);
                           if (!crc.ok())
                             return self->Close(LinkState::kDisconnected, crc.message());
                           auto msg = common::DecodeMessage(h.type, payload);
                           if (!msg.ok())
                             return self->Close(LinkState::kDisconnected, msg.status().message());
                           self->last_heard_ = Clock::now();
                           self->OnFrame(*msg);
                           if (!self->closed()) self->ReadFrame();
                         });
      });
}

void ReplicationClient::Session::OnFrame(const common::Message& msg) {
  if (phase_ == Phase::kHandshake) return OnHandshakeFrame(msg);
  if (const auto* ack = std::get_if<common::AckMsg>(&msg)) return OnAck(*ack);
  if (const auto* done = std::get_if<common::SyncDoneMsg>(&msg)) {
    return client_.OnApplied(done->applied_seq);
  }
  if (const auto* ping = std::get_if<common::PingMsg>(&msg)) {
    return SendControl(EncodeOrEmpty(common::PongMsg{ping->token}));
  }
  if (std::holds_alternative<common::PongMsg>(msg)) return;
  if (const auto* m = std::get_if<common::ManifestMsg>(&msg)) {
    return client_.OnManifestChunk(m->token, m->last != 0, std::string(m->error), m->entries);
  }
  if (const auto* m = std::get_if<common::SumsMsg>(&msg)) {
    return client_.OnSums(m->token, std::string(m->error), m->size, m->sums);
  }
  if (const auto* err = std::get_if<common::ErrorMsg>(&msg)) {
    const std::string why = "mirrord refused: " + std::string(common::WireErrorName(err->code)) +
                            ": " + common::QuoteForMessage(err->message);
    return Close(StateAfterRefusal(err->code), why);
  }
  Close(LinkState::kDisconnected, "unexpected " +
                                      std::string(common::FrameTypeName(common::MessageType(msg))) +
                                      " frame from mirrord");
}

void ReplicationClient::Session::OnHandshakeFrame(const common::Message& msg) {
  std::string reply = handshake_.OnFrame(msg);
  if (!reply.empty()) SendControl(std::move(reply));
  switch (handshake_.state()) {
    case common::HandshakeState::kFailed:
      return Close(StateAfterRefusal(handshake_.error_code()),
                   "handshake: " + handshake_.error().message());
    case common::HandshakeState::kDone: {
      if (!OpenCursor(handshake_.welcome())) return;
      phase_ = Phase::kStreaming;
      const common::WelcomeMsg& w = handshake_.welcome();
      if (paused_) {
        // Nothing mirrord acknowledged belongs to this journal's stream until RESYNC.
        client_.OnConnected(0, 0, 0);
        return client_.OnResyncNeeded(resync_why_);
      }
      client_.OnConnected(w.resume_seq - 1, w.durable_seq, w.applied_seq);
      return Ship();
    }
    default:
      return;
  }
}

// The stream resumes at mirrord's resume_seq, which this journal must still hold (or be
// about to write). Otherwise the two sides diverged and only a resync can join them.
bool ReplicationClient::Session::OpenCursor(const common::WelcomeMsg& welcome) {
  const common::JournalStats js = client_.journal_.stats();
  const uint64_t resume = welcome.resume_seq;
  std::string why;
  if (client_.ResyncPending(&why)) {
    // the marker says why
  } else if (resume == 0) {
    why =
        "mirrord asks for a resync: its image follows no stream of this source (a "
        "directory adopted for failback)";
  } else if (resume > js.released_seq + 1) {
    why = "mirrord holds records up to seq " + std::to_string(resume - 1) +
          " but this journal ends at seq " + std::to_string(js.released_seq) +
          " (journal replaced or lost in a machine crash)";
  } else if (resume < js.tail_seq) {
    why = "mirrord wants seq " + std::to_string(resume) + " but the journal starts at seq " +
          std::to_string(js.tail_seq) + " (freed while not mirrored)";
  }
  if (!why.empty()) {
    paused_ = true;
    resync_why_ = why;
    return true;
  }
  common::Result<common::JournalCursor> cursor = client_.journal_.ReadFrom(resume);
  if (!cursor.ok()) {
    Close(LinkState::kDisconnected, "journal: " + cursor.status().ToString());
    return false;
  }
  cursor_.emplace(std::move(cursor).value());
  shipped_seq_ = resume - 1;
  return true;
}

void ReplicationClient::Session::Restart(uint64_t next_seq) {
  common::Result<common::JournalCursor> cursor = client_.journal_.ReadFrom(next_seq);
  if (!cursor.ok()) {
    return Close(LinkState::kDisconnected, "journal: " + cursor.status().ToString());
  }
  cursor_.emplace(std::move(cursor).value());
  shipped_seq_ = next_seq - 1;
  in_flight_.clear();
  in_flight_bytes_ = 0;
  awaiting_restart_ack_ = true;
  restart_seq_ = next_seq;
  SendControl(EncodeOrEmpty(common::ResyncMsg{next_seq}));
  paused_ = false;
  KickWrite();
}

void ReplicationClient::Session::SendGated(std::string frame, uint64_t gate) {
  if (frame.empty() || closed()) return;
  gated_out_.emplace_back(gate, std::move(frame));
  KickWrite();
}

void ReplicationClient::Session::OnAck(const common::AckMsg& ack) {
  // Until RESYNC is answered, ACKs speak of mirrord's old stream (sent before it read the
  // RESYNC): its answer is the first ACK of exactly (next_seq - 1, next_seq - 1).
  if (paused_) return;
  if (awaiting_restart_ack_) {
    if (ack.received_seq != restart_seq_ - 1 || ack.durable_seq != restart_seq_ - 1) return;
    awaiting_restart_ack_ = false;
    client_.OnRestartAcked(ack.received_seq);
    return Ship();
  }
  uint64_t end_offset = 0;
  bool moved = false;
  while (!in_flight_.empty() && in_flight_.front().last_seq <= ack.received_seq) {
    in_flight_bytes_ -= in_flight_.front().bytes;
    end_offset = in_flight_.front().end_offset;
    moved = true;
    in_flight_.pop_front();
  }
  if (moved) client_.OnReceivedEndOffset(end_offset);
  client_.OnAck(ack.received_seq, ack.durable_seq);
  Ship();
}

// ---- Writing

void ReplicationClient::Session::WantSync(uint64_t seq) {
  sync_wanted_ = std::max(sync_wanted_, seq);
  KickWrite();
}

void ReplicationClient::Session::Ship() { KickWrite(); }

void ReplicationClient::Session::SendControl(std::string frame) {
  if (frame.empty() || closed()) return;
  control_out_.push_back(std::move(frame));
  KickWrite();
}

// Copies released records into batch_ (up to kMaxBatchBytes, and while the bytes in
// flight stay under kMaxInFlightBytes) and frames them. false: nothing to send.
bool ReplicationClient::Session::FillBatch() {
  batch_.clear();
  batch_ends_.clear();
  cursor_->Refresh();
  uint64_t first = 0;
  uint64_t end_offset = 0;
  while (batch_.size() < kMaxBatchBytes && in_flight_bytes_ + batch_.size() < kMaxInFlightBytes) {
    common::Result<bool> next = cursor_->Next();
    if (!next.ok()) {
      Close(LinkState::kDisconnected, "journal: " + next.status().ToString());
      return false;
    }
    if (!*next) break;
    if (first == 0) first = cursor_->seq();
    batch_.append(cursor_->bytes());
    batch_ends_.push_back(batch_.size());
    shipped_seq_ = cursor_->seq();
    end_offset = cursor_->end_offset();
  }
  if (batch_ends_.empty()) return false;
  batch_views_.clear();
  size_t begin = 0;
  for (size_t end : batch_ends_) {
    batch_views_.emplace_back(batch_.data() + begin, end - begin);
    begin = end;
  }
  if (common::Status s = batch_frame_.BuildRecords(first, batch_views_); !s.ok()) {
    Close(LinkState::kDisconnected, "framing records: " + s.ToString());
    return false;
  }
  in_flight_.push_back({shipped_seq_, batch_.size(), end_offset});
  in_flight_bytes_ += batch_.size();
  return true;
}

void ReplicationClient::Session::KickWrite() {
  if (write_busy_ || closed() || phase_ == Phase::kConnecting) return;
  std::vector<asio::const_buffer> buffers;
  uint64_t sent_seq = 0;
  if (!control_out_.empty()) {
    writing_control_ = std::move(control_out_.front());
    control_out_.pop_front();
    buffers.emplace_back(asio::buffer(writing_control_));
  } else if (phase_ != Phase::kStreaming || paused_) {
    return;
  } else if (!gated_out_.empty() && shipped_seq_ >= gated_out_.front().first) {
    writing_control_ = std::move(gated_out_.front().second);
    gated_out_.pop_front();
    buffers.emplace_back(asio::buffer(writing_control_));
  } else if (sync_wanted_ > sync_sent_ && shipped_seq_ >= sync_wanted_) {
    sync_sent_ = sync_wanted_;
    writing_control_ = EncodeOrEmpty(common::SyncMsg{sync_sent_});
    buffers.emplace_back(asio::buffer(writing_control_));
  } else if (FillBatch()) {
    buffers.emplace_back(asio::buffer(batch_frame_.head()));
    for (std::string_view piece : batch_frame_.bulk()) buffers.emplace_back(asio::buffer(piece));
    sent_seq = shipped_seq_;
  } else {
    return;
  }
  write_busy_ = true;
  last_sent_ = Clock::now();
  asio::async_write(
      socket_, buffers,
      [self = shared_from_this(), sent_seq](const boost::system::error_code& ec, size_t) {
        self->write_busy_ = false;
        if (self->closed()) return;
        if (ec) return self->Close(LinkState::kDisconnected, "write: " + ec.message());
        if (sent_seq != 0) self->client_.OnSent(sent_seq);
        self->KickWrite();
      });
}

// ---- Liveness and closing

void ReplicationClient::Session::ArmLiveness() {
  liveness_.expires_after(kPingEvery);
  liveness_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec && !self->closed()) self->OnLiveness();
  });
}

// A link that stays silent (a pulled cable, a hung peer) is declared dead after
// kDeadAfter; an idle one is kept alive with PINGs (mirrord closes idle sessions).
void ReplicationClient::Session::OnLiveness() {
  const Clock::time_point now = Clock::now();
  if (now - last_heard_ >= kDeadAfter) {
    return Close(LinkState::kDisconnected,
                 "no answer from mirrord for " + std::to_string(kDeadAfter.count()) + " s");
  }
  if (phase_ == Phase::kStreaming) SendControl(EncodeOrEmpty(common::PingMsg{1}));
  ArmLiveness();
}

void ReplicationClient::Session::Close(LinkState next, const std::string& why) {
  if (closed()) return;
  const bool was_streaming = phase_ == Phase::kStreaming;
  phase_ = Phase::kClosed;
  boost::system::error_code ignored;
  resolver_.cancel();
  liveness_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  cursor_.reset();
  client_.OnSessionEnded(next, why, was_streaming);
}

}  // namespace mirror::fs
