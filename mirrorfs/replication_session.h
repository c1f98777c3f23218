// One connection of the ReplicationClient to mirrord (see replication_client.h for the
// protocol's course), and the client's Asio loop. Internal to the client: it lives on the client's
// Asio thread, is owned by shared_ptrs held in its own handlers and by the client's loop, and
// reports to the client through its On* callbacks.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/frame.h"
#include "common/handshake.h"
#include "common/journal.h"
#include "mirrorfs/asio.h"
#include "mirrorfs/replication_client.h"

namespace mirror::fs {

// A whole frame, or "" if the message breaks a field rule (then nothing is sent).
inline std::string EncodeOrEmpty(const common::Message& msg) {
  common::Result<std::string> bytes = common::EncodeFrame(msg);
  return bytes.ok() ? std::move(bytes).value() : std::string();
}

class ReplicationClient::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ReplicationClient& client, boost::asio::io_context& io);

  // All of these run on the loop thread.
  void Start();                 // resolve, connect, handshake, stream
  void Ship();                  // send what the journal released
  void WantSync(uint64_t seq);  // send SYNC(seq) once it was shipped
  // Resync: RESYNC(next_seq), then ship from next_seq (the stream was paused).
  void Restart(uint64_t next_seq);
  // Sends `frame` once every record up to `gate` was shipped (requests that must see
  // the records before them: RESYNC_DONE, MANIFEST_REQUEST, SUMS_REQUEST).
  void SendGated(std::string frame, uint64_t gate);
  void Close(LinkState next, const std::string& why);
  bool closed() const { return phase_ == Phase::kClosed; }

 private:
  enum class Phase { kConnecting, kHandshake, kStreaming, kClosed };
  struct InFlight {
    uint64_t last_seq;
    uint64_t bytes;
    uint64_t end_offset;  // journal ring offset after the batch's last record
  };

  void OnResolved(const boost::system::error_code& ec,
                  boost::asio::ip::tcp::resolver::results_type results);
  void OnConnected(const boost::system::error_code& ec);
  void ReadFrame();
  void OnFrame(const common::Message& msg);
  void OnHandshakeFrame(const common::Message& msg);
  bool OpenCursor(const common::WelcomeMsg& welcome);
  void OnAck(const common::AckMsg& ack);
  bool FillBatch();
  void SendControl(std::string frame);
  void KickWrite();
  void ArmLiveness();
  void OnLiveness();

  ReplicationClient& client_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer liveness_;
  Phase phase_ = Phase::kConnecting;
  common::ClientHandshake handshake_;

  std::array<char, common::kFrameHeaderSize> header_{};
  std::string payload_;
  std::chrono::steady_clock::time_point last_heard_;
  std::chrono::steady_clock::time_point last_sent_;

  std::optional<common::JournalCursor> cursor_;
  std::deque<InFlight> in_flight_;  // sent, not yet acknowledged as received
  uint64_t in_flight_bytes_ = 0;
  uint64_t shipped_seq_ = 0;  // the last record put in a batch
  uint64_t sync_wanted_ = 0;  // SYNC to send once shipped_seq_ reaches it
  uint64_t sync_sent_ = 0;
  // A resync is needed (resync_why_): nothing is shipped until Restart().
  bool paused_ = false;
  std::string resync_why_;
  bool awaiting_restart_ack_ = false;
  uint64_t restart_seq_ = 0;                                // the RESYNC's next_seq
  std::deque<std::pair<uint64_t, std::string>> gated_out_;  // (gate, frame), in order

  // The write in progress: control frames first, else one RECORDS batch.
  bool write_busy_ = false;
  std::deque<std::string> control_out_;
  std::string writing_control_;
  std::string batch_;               // the records' bytes, copied from the journal
  std::vector<size_t> batch_ends_;  // end of each record in batch_
  std::vector<std::string_view> batch_views_;
  common::EncodedFrame batch_frame_;
};

// The client's Asio objects (one thread runs `io`); internal to the client's files.
struct ReplicationClient::Loop {
  boost::asio::io_context io{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  boost::asio::steady_timer reconnect{io};
  boost::asio::steady_timer ship_later{io};  // async mode: coalesces wake-ups (kAsyncShipDelay)
  std::shared_ptr<Session> session;
  std::chrono::milliseconds backoff = kMinBackoff;
};

}  // namespace mirror::fs
