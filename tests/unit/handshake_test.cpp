#include "common/handshake.h"

#include <doctest/doctest.h>

#include <string>

#include "common/frame.h"
#include "common/hmac.h"

using namespace mirror::common;

namespace {

constexpr char kSecret[] = "correct horse battery staple";

// What the wire does: bytes out of one side, decoded for the other.
Message Wire(const std::string& bytes) {
  REQUIRE_FALSE(bytes.empty());
  Result<Message> msg = DecodeFrame(bytes);
  REQUIRE_MESSAGE(msg.ok(), msg.status().ToString());
  return *msg;
}

SourceLookup OneSource(std::string secret, uint64_t epoch = 3, uint64_t durable = 41,
                       uint64_t applied = 40) {
  return [=](std::string_view id) -> Result<SourceRecord> {
    if (id != "host-a") return Status::NotFound("no source " + std::string(id));
    return SourceRecord{secret, epoch, durable, applied, ""};
  };
}

std::string Hex(const HmacSha256Digest& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : d) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

// Runs the client against the server until the server answers AUTH; returns that answer.
struct Session {
  ClientHandshake client;
  ServerHandshake server;
  std::string hello, challenge, auth, reply;
  Session(std::string client_secret, SourceLookup lookup, uint64_t epoch = 3)
      : client("host-a", "vol-1", epoch, std::move(client_secret)), server(std::move(lookup)) {}
  void RunToReply() {
    Result<std::string> h = client.Start();
    REQUIRE(h.ok());
    hello = *h;
    challenge = server.OnFrame(Wire(hello));
    REQUIRE(server.state() == HandshakeState::kAwaitReply);
    auth = client.OnFrame(Wire(challenge));
    REQUIRE(client.state() == HandshakeState::kAwaitReply);
    reply = server.OnFrame(Wire(auth));
  }
};

ErrorMsg AsError(const Message& msg) {
  REQUIRE(std::holds_alternative<ErrorMsg>(msg));
  return std::get<ErrorMsg>(msg);
}

}  // namespace

TEST_CASE("HmacSha256MatchesRfc4231") {
  Result<HmacSha256Digest> tc1 = HmacSha256(std::string(20, '\x0b'), "Hi There");
  REQUIRE(tc1.ok());
  CHECK(Hex(*tc1) == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  Result<HmacSha256Digest> tc2 = HmacSha256("Jefe", "what do ya want for nothing?");
  REQUIRE(tc2.ok());
  CHECK(Hex(*tc2) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("ConstantTimeEqualAndRandom") {
  CHECK(ConstantTimeEqual("abc", "abc"));
  CHECK_FALSE(ConstantTimeEqual("abc", "abd"));
  CHECK_FALSE(ConstantTimeEqual("abc", "abcd"));
  CHECK(ConstantTimeEqual("", ""));
  Nonce a{}, b{};
  REQUIRE(FillRandom(a.data(), a.size()).ok());
  REQUIRE(FillRandom(b.data(), b.size()).ok());
  CHECK(a != b);
}

TEST_CASE("HappyPathAuthenticatesBothSides") {
  Session s(kSecret, OneSource(kSecret));
  s.RunToReply();
  REQUIRE(s.server.state() == HandshakeState::kDone);
  CHECK(s.server.hello().source_id == "host-a");
  CHECK(s.server.hello().volume_id == "vol-1");
  CHECK(s.server.hello().epoch == 3);
  CHECK(s.client.OnFrame(Wire(s.reply)).empty());
  REQUIRE(s.client.state() == HandshakeState::kDone);
  CHECK(s.client.error().ok());
  CHECK(s.client.welcome().resume_seq == 42);
  CHECK(s.client.welcome().durable_seq == 41);
  CHECK(s.client.welcome().applied_seq == 40);
  CHECK(s.client.welcome().epoch == 3);
  // The secret never crosses the wire.
  for (const std::string* bytes : {&s.hello, &s.challenge, &s.auth, &s.reply}) {
    CHECK(bytes->find(kSecret) == std::string::npos);
  }
}

TEST_CASE("NewerEpochIsAccepted") {
  Session s(kSecret, OneSource(kSecret, 3), 4);  // a promote raised the source's epoch
  s.RunToReply();
  REQUIRE(s.server.state() == HandshakeState::kDone);
  CHECK(s.server.hello().epoch == 4);
  s.client.OnFrame(Wire(s.reply));
  REQUIRE(s.client.state() == HandshakeState::kDone);
  CHECK(s.client.welcome().epoch == 3);
}

TEST_CASE("ClientWithWrongSecretIsRefused") {
  Session s("not the secret", OneSource(kSecret));
  s.RunToReply();
  CHECK(s.server.state() == HandshakeState::kFailed);
  CHECK(s.server.error_code() == WireError::kWrongSecret);
  CHECK(AsError(Wire(s.reply)).code == WireError::kWrongSecret);
  CHECK(s.client.OnFrame(Wire(s.reply)).empty());
  CHECK(s.client.state() == HandshakeState::kFailed);
  CHECK(s.client.error_code() == WireError::kWrongSecret);
  CHECK(s.client.error().code() == Code::kPermissionDenied);
  CHECK(s.client.error().message().find("wrong-secret") != std::string::npos);
}

TEST_CASE("ServerWithoutTheSecretIsRefusedByTheClient") {
  ClientHandshake client("host-a", "vol-1", 3, kSecret);
  Result<std::string> hello_bytes = client.Start();
  REQUIRE(hello_bytes.ok());
  const HelloMsg hello = std::get<HelloMsg>(Wire(*hello_bytes));
  Nonce nonce{};
  REQUIRE(FillRandom(nonce.data(), nonce.size()).ok());
  const std::string auth_bytes = client.OnFrame(Wire(*EncodeFrame(ChallengeMsg{nonce})));
  const AuthMsg auth = std::get<AuthMsg>(Wire(auth_bytes));

  SUBCASE("a server proof made with another secret") {
    Result<Proof> forged = ServerProof("guessed secret", hello, nonce);
    REQUIRE(forged.ok());
    const std::string answer = client.OnFrame(Wire(*EncodeFrame(WelcomeMsg{*forged, 1, 0, 0, 3})));
    CHECK(AsError(Wire(answer)).code == WireError::kWrongSecret);
  }
  SUBCASE("the client's own proof reflected back") {
    const std::string answer =
        client.OnFrame(Wire(*EncodeFrame(WelcomeMsg{auth.proof, 1, 0, 0, 3})));
    CHECK(AsError(Wire(answer)).code == WireError::kWrongSecret);
  }
  CHECK(client.state() == HandshakeState::kFailed);
  CHECK(client.error().message() == "mirrord failed to prove it knows the secret");
}

TEST_CASE("ReplayedAuthIsRefused") {
  Session first(kSecret, OneSource(kSecret));
  first.RunToReply();
  REQUIRE(first.server.state() == HandshakeState::kDone);
  // An eavesdropper replays the first connection's HELLO and AUTH on a new one.
  ServerHandshake second(OneSource(kSecret));
  const std::string challenge = second.OnFrame(Wire(first.hello));
  REQUIRE(second.state() == HandshakeState::kAwaitReply);
  CHECK(std::get<ChallengeMsg>(Wire(challenge)).server_nonce !=
        std::get<ChallengeMsg>(Wire(first.challenge)).server_nonce);
  const std::string reply = second.OnFrame(Wire(first.auth));
  CHECK(second.state() == HandshakeState::kFailed);
  CHECK(AsError(Wire(reply)).code == WireError::kWrongSecret);
}

TEST_CASE("UnknownSourceIsRefused") {
  ClientHandshake client("host-b", "vol-1", 3, kSecret);
  ServerHandshake server(OneSource(kSecret));
  const std::string reply = server.OnFrame(Wire(*client.Start()));
  CHECK(server.state() == HandshakeState::kFailed);
  CHECK(server.error_code() == WireError::kUnknownSource);
  CHECK(AsError(Wire(reply)).message.find("host-b") != std::string::npos);
  client.OnFrame(Wire(reply));
  CHECK(client.error_code() == WireError::kUnknownSource);
  CHECK(client.error().code() == Code::kNotFound);
}

TEST_CASE("LookupFailureIsInternal") {
  ServerHandshake server([](std::string_view) -> Result<SourceRecord> {
    return Status::IOError("read state file", 5);
  });
  ClientHandshake client("host-a", "vol-1", 3, kSecret);
  const std::string reply = server.OnFrame(Wire(*client.Start()));
  CHECK(AsError(Wire(reply)).code == WireError::kInternal);
  CHECK(server.state() == HandshakeState::kFailed);
}

TEST_CASE("StaleEpochIsFenced") {
  Session s(kSecret, OneSource(kSecret, 5), 4);
  s.RunToReply();
  CHECK(s.server.state() == HandshakeState::kFailed);
  const ErrorMsg err = AsError(Wire(s.reply));
  CHECK(err.code == WireError::kStaleEpoch);
  CHECK(err.message.find("fenced: promoted at epoch 5") != std::string::npos);
  s.client.OnFrame(Wire(s.reply));
  CHECK(s.client.error_code() == WireError::kStaleEpoch);
  CHECK(s.client.error().code() == Code::kMismatch);
  CHECK(s.client.error().message().find("fenced: promoted at epoch 5") != std::string::npos);
}

TEST_CASE("APromotedSourceIsFencedWhateverItsEpochWithThePromotesMessage") {
  for (uint64_t epoch : {1, 2, 3}) {
    SourceLookup promoted = [](std::string_view) -> Result<SourceRecord> {
      SourceRecord r{kSecret, 2, 10, 10, ""};
      r.fenced_message = "fenced: promoted at epoch 2 (image at seq 10)";
      return r;
    };
    Session s(kSecret, promoted, epoch);
    s.RunToReply();
    CHECK(s.server.state() == HandshakeState::kFailed);
    const ErrorMsg err = AsError(Wire(s.reply));
    CHECK(err.code == WireError::kStaleEpoch);
    CHECK(err.message == "fenced: promoted at epoch 2 (image at seq 10)");
  }
}

TEST_CASE("StaleEpochWithWrongSecretLearnsNothingAboutFencing") {
  Session s("not the secret", OneSource(kSecret, 5), 4);
  s.RunToReply();
  CHECK(AsError(Wire(s.reply)).code == WireError::kWrongSecret);
}

TEST_CASE("WrongVersionIsRefused") {
  for (uint32_t version : {kMinWireProtocolVersion - 1, kWireProtocolVersion + 1}) {
    CAPTURE(version);
    ServerHandshake server(OneSource(kSecret));
    HelloMsg hello{version, "host-a", "vol-1", 3, Nonce{}};
    const std::string reply = server.OnFrame(Wire(*EncodeFrame(hello)));
    CHECK(server.state() == HandshakeState::kFailed);
    const ErrorMsg err = AsError(Wire(reply));
    CHECK(err.code == WireError::kProtocol);
    CHECK(err.message.find("protocol version " + std::to_string(version)) != std::string::npos);
  }
}

// A version 1 source (no flags in its HELLO) still gets in, and counts as one that waits
// for durable ACKs, as every version 1 source was treated.
TEST_CASE("VersionOneHelloIsAcceptedAndWantsDurable") {
  ServerHandshake server(OneSource(kSecret));
  HelloMsg hello{1, "host-a", "vol-1", 3, Nonce{}};
  hello.flags = 0;  // not on the wire in version 1
  const std::string reply = server.OnFrame(Wire(*EncodeFrame(hello)));
  CHECK(server.state() == HandshakeState::kAwaitReply);
  CHECK(std::holds_alternative<ChallengeMsg>(Wire(reply)));
  CHECK(server.hello().version == 1);
  CHECK(server.hello().flags == kHelloWantsDurable);
}

TEST_CASE("TheClientSendsItsHelloFlags") {
  for (uint32_t flags : {0u, kHelloWantsDurable}) {
    CAPTURE(flags);
    ClientHandshake client("host-a", "vol-1", 3, kSecret, flags);
    ServerHandshake server(OneSource(kSecret));
    Result<std::string> hello = client.Start();
    REQUIRE(hello.ok());
    server.OnFrame(Wire(*hello));
    CHECK(server.hello().version == kWireProtocolVersion);
    CHECK(server.hello().flags == flags);
  }
}

TEST_CASE("OutOfOrderFramesAreProtocolErrors") {
  SUBCASE("AUTH before HELLO") {
    ServerHandshake server(OneSource(kSecret));
    const ErrorMsg err = AsError(Wire(server.OnFrame(AuthMsg{})));
    CHECK(err.code == WireError::kProtocol);
    CHECK(err.message.find("unexpected auth frame before HELLO") != std::string::npos);
  }
  SUBCASE("a second HELLO") {
    ServerHandshake server(OneSource(kSecret));
    HelloMsg hello{1, "host-a", "vol-1", 3, Nonce{}};
    server.OnFrame(hello);
    REQUIRE(server.state() == HandshakeState::kAwaitReply);
    CHECK(AsError(Wire(server.OnFrame(hello))).code == WireError::kProtocol);
  }
  SUBCASE("RECORDS before the handshake") {
    ServerHandshake server(OneSource(kSecret));
    CHECK(AsError(Wire(server.OnFrame(SyncMsg{1}))).code == WireError::kProtocol);
    CHECK(server.state() == HandshakeState::kFailed);
    CHECK(server.OnFrame(HelloMsg{}).empty());  // nothing more once failed
  }
  SUBCASE("WELCOME before CHALLENGE") {
    ClientHandshake client("host-a", "vol-1", 3, kSecret);
    REQUIRE(client.Start().ok());
    CHECK(AsError(Wire(client.OnFrame(WelcomeMsg{}))).code == WireError::kProtocol);
    CHECK(client.state() == HandshakeState::kFailed);
  }
  SUBCASE("a second CHALLENGE") {
    ClientHandshake client("host-a", "vol-1", 3, kSecret);
    REQUIRE(client.Start().ok());
    client.OnFrame(ChallengeMsg{});
    CHECK(AsError(Wire(client.OnFrame(ChallengeMsg{}))).code == WireError::kProtocol);
  }
  SUBCASE("a peer's ERROR fails the server with nothing to send") {
    ServerHandshake server(OneSource(kSecret));
    CHECK(server.OnFrame(ErrorMsg{WireError::kShuttingDown, "bye"}).empty());
    CHECK(server.state() == HandshakeState::kFailed);
    CHECK(server.error_code() == WireError::kShuttingDown);
  }
}

TEST_CASE("ClientRefusesToStartTwiceOrWithoutSecret") {
  ClientHandshake empty("host-a", "vol-1", 3, "");
  CHECK_FALSE(empty.Start().ok());
  ClientHandshake client("host-a", "vol-1", 3, kSecret);
  REQUIRE(client.Start().ok());
  CHECK_FALSE(client.Start().ok());
  ClientHandshake bad_id("a/b", "vol-1", 3, kSecret);
  CHECK_FALSE(bad_id.Start().ok());
}
