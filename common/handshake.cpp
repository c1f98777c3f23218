#include "common/handshake.h"

#include <utility>

#include "common/endian.h"
#include "common/hmac.h"

namespace mirror::common {
namespace {

constexpr std::string_view kClientLabel = "mirrorfs-auth-v1";
constexpr std::string_view kServerLabel = "mirrorfs-server-v1";

// Distinct labels keep a client proof from ever passing as a server proof (reflection).
Result<Proof> TranscriptProof(std::string_view label, std::string_view secret,
                              const HelloMsg& hello, const Nonce& server_nonce) {
  std::string msg(label);
  AppendLE(msg, static_cast<uint32_t>(hello.source_id.size()));
  msg.append(hello.source_id);
  AppendLE(msg, static_cast<uint32_t>(hello.volume_id.size()));
  msg.append(hello.volume_id);
  AppendLE(msg, hello.epoch);
  msg.append(AsBytes(hello.client_nonce));
  msg.append(AsBytes(server_nonce));
  return HmacSha256(secret, msg);
}

// The local Status kind for a wire refusal, so callers can branch without the code.
Status StatusFor(WireError code, std::string msg) {
  switch (code) {
    case WireError::kWrongSecret:
      return Status::PermissionDenied(std::move(msg));
    case WireError::kUnknownSource:
      return Status::NotFound(std::move(msg));
    case WireError::kStaleEpoch:
      return Status::Mismatch(std::move(msg));
    case WireError::kShuttingDown:
      return Status::Aborted(std::move(msg));
    default:
      return Status::Corruption(std::move(msg));
  }
}

std::string ErrorFrame(WireError code, const std::string& text) {
  Result<std::string> bytes = EncodeFrame(ErrorMsg{code, text});
  return bytes.ok() ? std::move(bytes).value() : std::string();  // an ERROR always encodes
}

std::string Encode(const Message& msg) {
  Result<std::string> bytes = EncodeFrame(msg);
  return bytes.ok() ? std::move(bytes).value() : std::string();
}

}  // namespace

Result<Proof> ClientProof(std::string_view secret, const HelloMsg& hello,
                          const Nonce& server_nonce) {
  return TranscriptProof(kClientLabel, secret, hello, server_nonce);
}

Result<Proof> ServerProof(std::string_view secret, const HelloMsg& hello,
                          const Nonce& server_nonce) {
  return TranscriptProof(kServerLabel, secret, hello, server_nonce);
}

// ---- ClientHandshake

ClientHandshake::ClientHandshake(std::string source_id, std::string volume_id, uint64_t epoch,
                                 std::string secret, uint32_t hello_flags)
    : secret_(std::move(secret)) {
  hello_.flags = hello_flags;
  hello_.source_id = std::move(source_id);
  hello_.volume_id = std::move(volume_id);
  hello_.epoch = epoch;
}

Result<std::string> ClientHandshake::Start() {
  if (state_ != HandshakeState::kStart) return Status::InvalidArgument("handshake already started");
  if (secret_.empty()) return Status::InvalidArgument("the secret is empty");
  MIRROR_RETURN_IF_ERROR(FillRandom(hello_.client_nonce.data(), hello_.client_nonce.size()));
  MIRROR_ASSIGN_OR_RETURN(std::string bytes, EncodeFrame(hello_));
  state_ = HandshakeState::kAwaitReply;
  return bytes;
}

std::string ClientHandshake::OnFrame(const Message& msg) {
  if (state_ != HandshakeState::kAwaitReply) {
    return Fail(WireError::kProtocol, Status::InvalidArgument("frame after the handshake ended"),
                false);
  }
  if (const auto* err = std::get_if<ErrorMsg>(&msg)) {
    error_code_ = err->code;
    error_ = StatusFor(err->code, "mirrord refused the handshake: " +
                                      std::string(WireErrorName(err->code)) + ": " + err->message);
    state_ = HandshakeState::kFailed;
    return {};
  }
  const bool challenged = have_challenge_;
  if (const auto* ch = std::get_if<ChallengeMsg>(&msg); ch != nullptr && !challenged) {
    server_nonce_ = ch->server_nonce;
    have_challenge_ = true;
    Result<Proof> proof = ClientProof(secret_, hello_, server_nonce_);
    if (!proof.ok()) return Fail(WireError::kInternal, proof.status(), true);
    return Encode(AuthMsg{*proof});
  }
  if (const auto* w = std::get_if<WelcomeMsg>(&msg); w != nullptr && challenged) {
    Result<Proof> expected = ServerProof(secret_, hello_, server_nonce_);
    if (!expected.ok()) return Fail(WireError::kInternal, expected.status(), true);
    if (!ConstantTimeEqual(AsBytes(*expected), AsBytes(w->server_proof))) {
      return Fail(WireError::kWrongSecret,
                  Status::PermissionDenied("mirrord failed to prove it knows the secret"), true);
    }
    welcome_ = *w;
    state_ = HandshakeState::kDone;
    return {};
  }
  return Fail(WireError::kProtocol,
              Status::Corruption("unexpected " + std::string(FrameTypeName(MessageType(msg))) +
                                 " frame " + (challenged ? "after CHALLENGE" : "before CHALLENGE")),
              true);
}

std::string ClientHandshake::Fail(WireError code, Status why, bool tell_peer) {
  state_ = HandshakeState::kFailed;
  error_code_ = code;
  error_ = std::move(why);
  return tell_peer ? ErrorFrame(code, error_.message()) : std::string();
}

// ---- ServerHandshake

ServerHandshake::ServerHandshake(SourceLookup lookup) : lookup_(std::move(lookup)) {}

std::string ServerHandshake::OnFrame(const Message& msg) {
  if (state_ != HandshakeState::kAwaitReply) {
    return Fail(WireError::kProtocol, Status::InvalidArgument("frame after the handshake ended"),
                false);
  }
  if (const auto* err = std::get_if<ErrorMsg>(&msg)) {
    return Fail(
        err->code,
        StatusFor(err->code, "the source gave up: " + std::string(WireErrorName(err->code)) + ": " +
                                 err->message),
        false);
  }
  if (const auto* h = std::get_if<HelloMsg>(&msg); h != nullptr && !have_hello_) return OnHello(*h);
  if (const auto* a = std::get_if<AuthMsg>(&msg); a != nullptr && have_hello_) return OnAuth(*a);
  return Fail(WireError::kProtocol,
              Status::Corruption("unexpected " + std::string(FrameTypeName(MessageType(msg))) +
                                 " frame " + (have_hello_ ? "after HELLO" : "before HELLO")));
}

std::string ServerHandshake::OnHello(const HelloMsg& hello) {
  hello_ = hello;
  have_hello_ = true;
  if (hello.version < kMinWireProtocolVersion || hello.version > kWireProtocolVersion) {
    return Fail(WireError::kProtocol,
                Status::Mismatch("protocol version " + std::to_string(hello.version) +
                                 " is not supported (this mirrord speaks " +
                                 std::to_string(kMinWireProtocolVersion) + " to " +
                                 std::to_string(kWireProtocolVersion) + ")"));
  }
  Result<SourceRecord> found = lookup_(hello.source_id);
  if (!found.ok()) {
    const bool unknown = found.status().code() == Code::kNotFound;
    return Fail(unknown ? WireError::kUnknownSource : WireError::kInternal,
                unknown ? Status::NotFound("unknown source '" + hello.source_id + "'")
                        : found.status().Annotate("looking up source '" + hello.source_id + "'"));
  }
  source_ = std::move(found).value();
  if (source_.secret.empty()) {
    return Fail(WireError::kInternal,
                Status::InvalidArgument("source '" + hello.source_id + "' has an empty secret"));
  }
  if (Status s = FillRandom(server_nonce_.data(), server_nonce_.size()); !s.ok()) {
    return Fail(WireError::kInternal, s);
  }
  return Encode(ChallengeMsg{server_nonce_});
}

std::string ServerHandshake::OnAuth(const AuthMsg& auth) {
  Result<Proof> expected = ClientProof(source_.secret, hello_, server_nonce_);
  if (!expected.ok()) return Fail(WireError::kInternal, expected.status());
  if (!ConstantTimeEqual(AsBytes(*expected), AsBytes(auth.proof))) {
    return Fail(WireError::kWrongSecret,
                Status::PermissionDenied("source '" + hello_.source_id +
                                         "' failed to prove it knows the secret"));
  }
  // Fencing is told only to a source that proved itself.
  if (!source_.fenced_message.empty()) {
    return Fail(WireError::kStaleEpoch, Status::Mismatch(source_.fenced_message));
  }
  if (hello_.epoch < source_.epoch) {
    return Fail(WireError::kStaleEpoch,
                Status::Mismatch("fenced: promoted at epoch " + std::to_string(source_.epoch) +
                                 ", the source is at epoch " + std::to_string(hello_.epoch)));
  }
  Result<Proof> proof = ServerProof(source_.secret, hello_, server_nonce_);
  if (!proof.ok()) return Fail(WireError::kInternal, proof.status());
  WelcomeMsg w;
  w.server_proof = *proof;
  w.durable_seq = source_.durable_seq;
  w.resume_seq = source_.durable_seq + 1;
  w.applied_seq = source_.applied_seq;
  w.epoch = source_.epoch;
  state_ = HandshakeState::kDone;
  return Encode(w);
}

std::string ServerHandshake::Fail(WireError code, Status why, bool tell_peer) {
  state_ = HandshakeState::kFailed;
  error_code_ = code;
  error_ = std::move(why);
  return tell_peer ? ErrorFrame(code, error_.message()) : std::string();
}

}  // namespace mirror::common
