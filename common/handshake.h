// The authentication handshake of the wire protocol (docs/formats.md, "Wire frames
// and handshake"), as two state machines with no I/O: the daemons feed them decoded
// frames and send the frames they return, so both sides share one logic and it is
// testable without sockets.
//
//   source                                mirrord
//   HELLO(version, source, volume, epoch, client nonce) ->
//                                     <- CHALLENGE(server nonce, fresh per connection)
//   AUTH(proof = HMAC(secret, "mirrorfs-auth-v1" || transcript)) ->
//                                     <- WELCOME(server proof = HMAC(secret,
//                                          "mirrorfs-server-v1" || transcript), seqs, epoch)
//   transcript = u32-len source_id || u32-len volume_id || u64 epoch || client nonce || server
//   nonce
//
// Either side may answer with ERROR instead and close. The secret never crosses the
// wire; a fresh server nonce makes an AUTH captured from another connection useless,
// and the server proof lets the source refuse an impostor mirrord.
//
// Thread-safety: an instance belongs to one connection (one strand); not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/frame.h"
#include "common/status.h"

namespace mirror::common {

// The transcript proofs, exposed for tests and tools. Fails only if libcrypto does.
Result<Proof> ClientProof(std::string_view secret, const HelloMsg& hello,
                          const Nonce& server_nonce);
Result<Proof> ServerProof(std::string_view secret, const HelloMsg& hello,
                          const Nonce& server_nonce);

enum class HandshakeState {
  kStart,       // client only: Start() not called yet
  kAwaitReply,  // waiting for the peer's next frame
  kDone,        // authenticated; the stream (RECORDS, ACK, ...) may begin
  kFailed,      // refused or broken: send what OnFrame returned (if anything) and close
};

class ClientHandshake {
 public:
  // An empty secret is refused by Start(). `hello_flags`: HELLO's flags
  // (kHelloWantsDurable, or 0 for a source that waits for received ACKs at most).
  ClientHandshake(std::string source_id, std::string volume_id, uint64_t epoch, std::string secret,
                  uint32_t hello_flags = kHelloWantsDurable);

  // The HELLO to send, with a fresh client nonce.
  Result<std::string> Start();
  // Consumes the peer's frame and returns the bytes to send (empty: nothing). On
  // CHALLENGE: AUTH. On WELCOME with a valid server proof: nothing, state kDone. On a
  // wrong server proof: an ERROR(kWrongSecret) to send, state kFailed. On ERROR:
  // nothing, state kFailed with the peer's code. Anything else: ERROR(kProtocol).
  std::string OnFrame(const Message& msg);

  HandshakeState state() const { return state_; }
  // Why the handshake failed (OK otherwise). The message names the code and the peer's text.
  const Status& error() const { return error_; }
  // The code: the peer's (from its ERROR) or ours (in the ERROR we sent).
  WireError error_code() const { return error_code_; }
  // Valid once done: mirrord's resume_seq, durable and applied seqs and stored epoch.
  const WelcomeMsg& welcome() const { return welcome_; }

 private:
  std::string Fail(WireError code, Status why, bool tell_peer);

  HelloMsg hello_;
  std::string secret_;
  Nonce server_nonce_{};
  bool have_challenge_ = false;
  HandshakeState state_ = HandshakeState::kStart;
  Status error_;
  WireError error_code_ = WireError::kProtocol;
  WelcomeMsg welcome_;
};

// What mirrord knows about a source, found by its id.
struct SourceRecord {
  std::string secret;
  uint64_t epoch = 0;  // the stored (highest seen) epoch
  uint64_t durable_seq = 0;
  uint64_t applied_seq = 0;
  // Not empty once the source's image was promoted: every authenticated HELLO, of any
  // epoch, is refused with it (stale-epoch).
  std::string fenced_message;
};
// Returns the source's record, Status::NotFound for an unknown source (answered with
// kUnknownSource), or another error (answered with kInternal). Called once, on HELLO.
using SourceLookup = std::function<Result<SourceRecord>(std::string_view source_id)>;

class ServerHandshake {
 public:
  explicit ServerHandshake(SourceLookup lookup);

  // Consumes the peer's frame and returns the bytes to send: CHALLENGE for HELLO,
  // WELCOME for a valid AUTH (state kDone), otherwise an ERROR (state kFailed):
  // kProtocol for another version or an out-of-order frame, kUnknownSource,
  // kWrongSecret for a wrong proof (compared in constant time), kStaleEpoch when the
  // authenticated source's epoch is older than the stored one. A peer's ERROR fails
  // the handshake with nothing to send.
  std::string OnFrame(const Message& msg);

  HandshakeState state() const { return state_; }
  const Status& error() const { return error_; }
  WireError error_code() const { return error_code_; }
  // Valid once done: who connected (ids, the source's epoch, possibly newer than the
  // stored one: the caller records it) and what the lookup said.
  const HelloMsg& hello() const { return hello_; }
  const SourceRecord& source() const { return source_; }

 private:
  std::string OnHello(const HelloMsg& hello);
  std::string OnAuth(const AuthMsg& auth);
  std::string Fail(WireError code, Status why, bool tell_peer = true);

  SourceLookup lookup_;
  HandshakeState state_ = HandshakeState::kAwaitReply;
  bool have_hello_ = false;
  HelloMsg hello_;
  SourceRecord source_;
  Nonce server_nonce_{};
  Status error_;
  WireError error_code_ = WireError::kProtocol;
};

}  // namespace mirror::common
