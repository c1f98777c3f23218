#include "common/frame.h"

#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "common/endian.h"
#include "common/record.h"
#include "record_samples.h"

using namespace mirror::common;

namespace {

// The records of every sample op, back to back, seqs 100, 101, ...
const std::string& SampleRecordBytes() {
  static const std::string bytes = [] {
    std::string out;
    uint64_t seq = 100;
    for (const Op& op : mirror::test::SampleOpsOfEveryType()) {
      Result<std::string> rec = EncodeRecord(RecordMeta{seq++, 7, 1700000000123456789}, op);
      REQUIRE(rec.ok());
      out += *rec;
    }
    return out;
  }();
  return bytes;
}
const uint32_t kSampleRecordCount =
    static_cast<uint32_t>(mirror::test::SampleOpsOfEveryType().size());

Nonce Filled(uint8_t first) {
  Nonce n{};
  for (size_t i = 0; i < n.size(); ++i) n[i] = static_cast<uint8_t>(first + i);
  return n;
}

std::vector<Message> SampleMessagesOfEveryType() {
  return {
      HelloMsg{1, "host-a", "vol-1", 42, Filled(1)},
      HelloMsg{2, "host-b", "vol-2", 43, Filled(2), 0},
      HelloMsg{2, "host-c", "vol-3", 44, Filled(3), kHelloWantsDurable},
      ChallengeMsg{Filled(50)},
      AuthMsg{Filled(99)},
      WelcomeMsg{Filled(7), 1001, 1000, 990, 41},
      RecordsMsg{100, kSampleRecordCount, SampleRecordBytes()},
      AckMsg{1005, 1001},
      SyncMsg{1005},
      SyncDoneMsg{1005},
      ErrorMsg{WireError::kStaleEpoch, "fenced: promoted at epoch 5"},
      PingMsg{0x0123456789abcdefull},
      PongMsg{0xfedcba9876543210ull},
      ResyncMsg{4001},
      ResyncDoneMsg{4100},
      ManifestRequestMsg{77, kManifestWantContentHashes},
      ManifestMsg{77, 0, "", std::string("\x05\0\0\0entry", 9)},
      ManifestMsg{77, 1, "image: too many entries", ""},
      SumsRequestMsg{78, "dir/file", 1u << 20},
      SumsMsg{78, "", 5000, std::string(32, '\x5a')},
      SumsMsg{79, "not found", 0, ""},
  };
}

std::string Encode(const Message& msg) {
  Result<std::string> bytes = EncodeFrame(msg);
  REQUIRE_MESSAGE(bytes.ok(), bytes.status().ToString());
  return *bytes;
}

// A frame built by hand from the documented layout (independent of EncodedFrame),
// with a correct CRC over whatever payload is given.
std::string HandFrame(uint16_t type, std::string_view payload, uint16_t flags = 0,
                      uint64_t reserved = 0) {
  std::string f = "MFS1";
  AppendLE(f, static_cast<uint32_t>(payload.size()));
  AppendLE(f, uint32_t{0});
  AppendLE(f, type);
  AppendLE(f, flags);
  AppendLE(f, reserved);
  f.append(payload);
  StoreLE(f.data() + 8, crc32c::Mask(crc32c::Value(f.data() + 12, f.size() - 12)));
  return f;
}

std::string ErrorText(std::string_view bytes, WireError* refusal = nullptr) {
  Result<Message> r = DecodeFrame(bytes, {}, refusal);
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

}  // namespace

TEST_CASE("EveryTypeRoundTrips") {
  for (const Message& msg : SampleMessagesOfEveryType()) {
    CAPTURE(FrameTypeName(MessageType(msg)));
    const std::string bytes = Encode(msg);
    Result<Message> back = DecodeFrame(bytes);
    REQUIRE_MESSAGE(back.ok(), back.status().ToString());
    CHECK(*back == msg);
  }
}

TEST_CASE("HeaderLayoutMatchesTheSpec") {
  const std::string bytes = Encode(PingMsg{5});
  REQUIRE(bytes.size() == kFrameHeaderSize + 8);
  CHECK(bytes.substr(0, 4) == "MFS1");
  CHECK(LoadLE<uint32_t>(bytes.data() + 4) == 8);
  CHECK(LoadLE<uint16_t>(bytes.data() + 12) == static_cast<uint16_t>(FrameType::kPing));
  CHECK(LoadLE<uint16_t>(bytes.data() + 14) == 0);
  CHECK(LoadLE<uint64_t>(bytes.data() + 16) == 0);
  CHECK(LoadLE<uint64_t>(bytes.data() + 24) == 5);
  CHECK(bytes == HandFrame(static_cast<uint16_t>(FrameType::kPing), bytes.substr(24)));
}

TEST_CASE("EveryTruncationOfEveryFrameIsAnError") {
  for (const Message& msg : SampleMessagesOfEveryType()) {
    CAPTURE(FrameTypeName(MessageType(msg)));
    const std::string bytes = Encode(msg);
    // Cut off on the stream: the header or the length no longer match.
    for (size_t n = 0; n < bytes.size(); ++n) {
      CAPTURE(n);
      CHECK_FALSE(DecodeFrame(std::string_view(bytes).substr(0, n)).ok());
    }
    // A sender that framed a short payload correctly: the field decoders must refuse it.
    const std::string_view payload = std::string_view(bytes).substr(kFrameHeaderSize);
    const auto type = static_cast<uint16_t>(MessageType(msg));
    for (size_t n = 0; n < payload.size(); ++n) {
      CAPTURE(n);
      CHECK_FALSE(DecodeFrame(HandFrame(type, payload.substr(0, n))).ok());
    }
  }
}

TEST_CASE("RandomByteFlipsAreRefusedAndNeverCrash") {
  std::mt19937_64 rng(20261125);
  for (const Message& msg : SampleMessagesOfEveryType()) {
    CAPTURE(FrameTypeName(MessageType(msg)));
    const std::string bytes = Encode(msg);
    for (int trial = 0; trial < 300; ++trial) {
      std::string bad = bytes;
      const int flips = 1 + static_cast<int>(rng() % 3);
      for (int i = 0; i < flips; ++i) bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255);
      if (bad == bytes) continue;  // two flips of one byte by the same value undo each other
      CHECK_FALSE(DecodeFrame(bad).ok());
      // The same damage under a recomputed CRC reaches the field decoders: they may
      // accept (a flipped seq is still a seq) but must not read out of bounds.
      if (DecodeFrameHeader(bad).ok()) {
        const std::string_view payload = std::string_view(bad).substr(kFrameHeaderSize);
        (void)DecodeFrame(HandFrame(LoadLE<uint16_t>(bad.data() + 12), payload));
      }
    }
  }
}

TEST_CASE("OversizedLengthIsRefusedFromTheHeaderAlone") {
  std::string header = HandFrame(static_cast<uint16_t>(FrameType::kRecords), "");
  StoreLE(header.data() + 4, uint32_t{1025});
  WireError refusal{};
  Result<FrameHeader> h = DecodeFrameHeader(header, FrameLimits{1024}, &refusal);  // 24 bytes only
  REQUIRE_FALSE(h.ok());
  CHECK(refusal == WireError::kOversized);
  CHECK(h.status().message().find("length 1025 at byte 4") != std::string::npos);
  CHECK(h.status().message().find("1024") != std::string::npos);
  StoreLE(header.data() + 4, uint32_t{1024});
  Result<FrameHeader> at_limit = DecodeFrameHeader(header, FrameLimits{1024});
  REQUIRE(at_limit.ok());
  CHECK(at_limit->length == 1024);
  StoreLE(header.data() + 4, UINT32_MAX);
  CHECK_FALSE(DecodeFrameHeader(header).ok());  // the default limit, too
}

TEST_CASE("WrongMagicIsRefused") {
  std::string bytes = Encode(PingMsg{1});
  bytes[3] = '2';  // a future format version
  WireError refusal{};
  const std::string text = ErrorText(bytes, &refusal);
  CHECK(refusal == WireError::kProtocol);
  CHECK(text.find("bad magic 0x4d465332 at byte 0") != std::string::npos);
}

TEST_CASE("HeaderFieldsAreChecked") {
  WireError refusal{};
  CHECK(ErrorText(HandFrame(0, ""), &refusal).find("unknown type 0 at byte 12") !=
        std::string::npos);
  CHECK(refusal == WireError::kUnknownType);
  CHECK(ErrorText(HandFrame(kMaxFrameType + 1, ""), &refusal).find("unknown type 18") !=
        std::string::npos);
  CHECK(ErrorText(HandFrame(10, std::string(8, 'x'), 1), &refusal).find("flags 1 at byte 14") !=
        std::string::npos);
  CHECK(refusal == WireError::kProtocol);
  CHECK(ErrorText(HandFrame(10, std::string(8, 'x'), 0, 1 << 20)).find("reserved at byte 16") !=
        std::string::npos);
  CHECK(ErrorText("MFS1").find("only 4 bytes") != std::string::npos);
}

TEST_CASE("BadCrcIsRefusedWithItsRange") {
  std::string bytes = Encode(AckMsg{3, 2});
  bytes.back() ^= 0x40;
  WireError refusal{};
  const std::string text = ErrorText(bytes, &refusal);
  CHECK(refusal == WireError::kBadCrc);
  CHECK(text.find("ack frame: CRC mismatch over bytes [12, 40)") != std::string::npos);
  // The CRC covers the type: a frame relabelled as another type of the same size fails.
  std::string relabelled = Encode(PingMsg{9});
  StoreLE(relabelled.data() + 12, static_cast<uint16_t>(FrameType::kPong));
  CHECK(ErrorText(relabelled).find("CRC mismatch") != std::string::npos);
}

TEST_CASE("RecordsThatDoNotTileThePayloadAreRefused") {
  const std::string& recs = SampleRecordBytes();
  const uint32_t first_len = LoadLE<uint32_t>(recs.data());
  auto records_frame = [](uint32_t count, std::string_view body) {
    std::string payload;
    AppendLE(payload, uint64_t{100});
    AppendLE(payload, count);
    payload.append(body);
    return HandFrame(static_cast<uint16_t>(FrameType::kRecords), payload);
  };
  // Records start at frame byte 36 (24 header + first_seq 8 + count 4).
  const std::string n = std::to_string(kSampleRecordCount);
  CHECK(ErrorText(records_frame(kSampleRecordCount + 1, recs))
            .find("field 'records' at byte 36: the header's count is " +
                  std::to_string(kSampleRecordCount + 1) + " but the payload holds " + n +
                  " records") != std::string::npos);
  CHECK(ErrorText(records_frame(kSampleRecordCount - 1, recs))
            .find("count is " + std::to_string(kSampleRecordCount - 1) + " but") !=
        std::string::npos);
  CHECK(ErrorText(records_frame(0, "")).find("count is 0") != std::string::npos);
  CHECK(ErrorText(records_frame(kSampleRecordCount, recs + std::string(10, '\0')))
            .find("10 bytes left, less than a record header") != std::string::npos);
  // The second record cut short: its length runs past the end.
  const std::string cut = recs.substr(0, first_len + 50);
  CHECK(ErrorText(records_frame(2, cut))
            .find("record 1 at byte " + std::to_string(36 + first_len) + ": length") !=
        std::string::npos);
  std::string tiny = recs.substr(0, first_len);
  StoreLE(tiny.data(), uint32_t{12});
  CHECK(ErrorText(records_frame(1, tiny))
            .find("record 0 at byte 36: length 12 is less than a record header") !=
        std::string::npos);
  // Exactly tiled: accepted, and the view points into the frame.
  const std::string ok = records_frame(1, recs.substr(0, first_len));
  Result<Message> m = DecodeFrame(ok);
  REQUIRE(m.ok());
  const auto& rm = std::get<RecordsMsg>(*m);
  CHECK(rm.records.data() == ok.data() + 36);
  CHECK(rm.records.size() == first_len);
}

TEST_CASE("RecordsBatchFromPiecesIsNotCopied") {
  const std::string& recs = SampleRecordBytes();
  const uint32_t first_len = LoadLE<uint32_t>(recs.data());
  const std::string_view all(recs);
  const std::string_view pieces[] = {all.substr(0, first_len), all.substr(first_len)};
  EncodedFrame frame;
  REQUIRE(frame.BuildRecords(100, pieces).ok());
  REQUIRE(frame.bulk().size() == 2);
  CHECK(frame.bulk()[0].data() == recs.data());
  CHECK(frame.bulk()[1].data() == recs.data() + first_len);
  CHECK(frame.head().size() == kFrameHeaderSize + 12);
  CHECK(frame.size() == kFrameHeaderSize + 12 + recs.size());
  CHECK(frame.ToBytes() == Encode(RecordsMsg{100, kSampleRecordCount, recs}));
  // A piece that is not whole records is refused, naming the piece.
  const std::string_view broken[] = {all.substr(0, first_len - 1)};
  Status s = frame.BuildRecords(100, broken);
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("piece 0") != std::string::npos);
  CHECK_FALSE(frame.BuildRecords(100, {}).ok());
}

TEST_CASE("FieldErrorsNameTheFieldAndOffset") {
  std::string payload;
  AppendLE(payload, uint32_t{1});
  AppendLE(payload, uint32_t{200});  // source_id's length, at frame byte 28
  payload.append(200, 'a');
  CHECK(ErrorText(HandFrame(1, payload))
            .find("hello frame: field 'source_id' at byte 28: length 200 is more than 127") !=
        std::string::npos);
  std::string ping;
  AppendLE(ping, uint64_t{1});
  ping.push_back('x');
  CHECK(ErrorText(HandFrame(10, ping)).find("1 trailing bytes at byte 32") != std::string::npos);
  CHECK(ErrorText(HandFrame(6, "abc")).find("field 'received_seq' at byte 24: runs past the end") !=
        std::string::npos);
}

TEST_CASE("IdsMustBeOneHarmlessPathComponent") {
  for (const std::string& id : {std::string(""), std::string("."), std::string(".."),
                                std::string("a/b"), std::string("x\0y", 3)}) {
    CAPTURE(id);
    HelloMsg hello{1, id, "vol", 1, Filled(0)};
    CHECK_FALSE(EncodeFrame(hello).ok());
    HelloMsg swapped{1, "src", id, 1, Filled(0)};
    CHECK_FALSE(EncodeFrame(swapped).ok());
  }
  CHECK_FALSE(EncodeFrame(HelloMsg{1, std::string(128, 'a'), "vol", 1, Filled(0)}).ok());
  CHECK(EncodeFrame(HelloMsg{1, std::string(127, 'a'), "vol", 1, Filled(0)}).ok());
  // A decoder meets them even from a sender that skipped the check.
  std::string payload;
  AppendLE(payload, uint32_t{1});
  AppendLE(payload, uint32_t{2});
  payload += "..";
  CHECK(ErrorText(HandFrame(1, payload)).find("field 'source_id' at byte 28: is '.' or '..'") !=
        std::string::npos);
}

TEST_CASE("ErrorMessagesAreBounded") {
  const std::string long_text(5000, 'e');
  Result<Message> back = DecodeFrame(Encode(ErrorMsg{WireError::kInternal, long_text}));
  REQUIRE(back.ok());
  CHECK(std::get<ErrorMsg>(*back).message == long_text.substr(0, kMaxErrorMessageBytes));
  std::string payload;
  AppendLE(payload, uint32_t{11});
  AppendLE(payload, uint32_t{kMaxErrorMessageBytes + 1});
  payload.append(kMaxErrorMessageBytes + 1, 'e');
  CHECK(ErrorText(HandFrame(9, payload)).find("field 'message' at byte 28: length 4097") !=
        std::string::npos);
  // An unknown code from a newer peer still decodes, and names itself "unknown".
  std::string future;
  AppendLE(future, uint32_t{77});
  AppendLE(future, uint32_t{0});
  Result<Message> f = DecodeFrame(HandFrame(9, future));
  REQUIRE(f.ok());
  CHECK(WireErrorName(std::get<ErrorMsg>(*f).code) == "unknown");
}

TEST_CASE("NamesAreStable") {
  CHECK(WireErrorName(WireError::kWrongSecret) == "wrong-secret");
  CHECK(WireErrorName(WireError::kUnknownSource) == "unknown-source");
  CHECK(WireErrorName(WireError::kStaleEpoch) == "stale-epoch");
  CHECK(WireErrorName(WireError::kSequenceGap) == "sequence-gap");
  CHECK(WireErrorName(WireError::kBadCrc) == "bad-crc");
  CHECK(WireErrorName(WireError::kOversized) == "oversized");
  CHECK(WireErrorName(WireError::kUnknownType) == "unknown-type");
  CHECK(WireErrorName(WireError::kEscape) == "escape");
  CHECK(WireErrorName(WireError::kDeviceRefused) == "device-refused");
  CHECK(WireErrorName(WireError::kProtocol) == "protocol");
  CHECK(WireErrorName(WireError::kInternal) == "internal");
  CHECK(WireErrorName(WireError::kShuttingDown) == "shutting-down");
  CHECK(static_cast<uint32_t>(WireError::kShuttingDown) == kMaxWireError);
  CHECK(FrameTypeName(FrameType::kHello) == "hello");
  CHECK(FrameTypeName(FrameType::kSyncDone) == "sync_done");
  CHECK(FrameTypeName(FrameType::kPong) == "pong");
  CHECK(FrameTypeName(FrameType::kResync) == "resync");
  CHECK(FrameTypeName(FrameType::kResyncDone) == "resync_done");
  CHECK(FrameTypeName(FrameType::kManifestRequest) == "manifest_request");
  CHECK(FrameTypeName(FrameType::kManifest) == "manifest");
  CHECK(FrameTypeName(FrameType::kSumsRequest) == "sums_request");
  CHECK(FrameTypeName(FrameType::kSums) == "sums");
  CHECK(static_cast<uint16_t>(FrameType::kSums) == kMaxFrameType);
  CHECK(FrameTypeName(static_cast<FrameType>(99)) == "unknown");
}

TEST_CASE("StreamingReaderDecodesHeaderThenPayload") {
  std::string stream;
  for (const Message& msg : SampleMessagesOfEveryType()) stream += Encode(msg);
  std::string_view rest(stream);
  size_t n = 0;
  for (const Message& want : SampleMessagesOfEveryType()) {
    Result<FrameHeader> h = DecodeFrameHeader(rest.substr(0, kFrameHeaderSize));
    REQUIRE(h.ok());
    CHECK(h->type == MessageType(want));
    const std::string_view payload = rest.substr(kFrameHeaderSize, h->length);
    REQUIRE(CheckFramePayload(*h, payload).ok());
    Result<Message> got = DecodeMessage(h->type, payload);
    REQUIRE(got.ok());
    CHECK(*got == want);
    rest.remove_prefix(kFrameHeaderSize + h->length);
    ++n;
  }
  CHECK(rest.empty());
  CHECK(n == SampleMessagesOfEveryType().size());
  // A payload of the wrong size is the caller's mistake, said as such.
  Result<FrameHeader> h = DecodeFrameHeader(stream);
  REQUIRE(h.ok());
  CHECK(CheckFramePayload(*h, "").code() == Code::kInvalidArgument);
}

// Version 2 appends flags u32 to version 1's HELLO; version 1 has none and reads as a
// source that wants durable ACKs.
TEST_CASE("HelloFlagsFollowTheNonceFromVersionTwoOn") {
  std::string v1;
  AppendLE(v1, uint32_t{1});
  AppendLE(v1, uint32_t{1});
  v1 += "s";
  AppendLE(v1, uint32_t{1});
  v1 += "v";
  AppendLE(v1, uint64_t{7});
  const Nonce nonce = Filled(9);
  v1.append(reinterpret_cast<const char*>(nonce.data()), nonce.size());
  CHECK(Encode(HelloMsg{1, "s", "v", 7, nonce, 0}) == HandFrame(1, v1));
  Result<Message> old = DecodeFrame(HandFrame(1, v1));
  REQUIRE(old.ok());
  CHECK(std::get<HelloMsg>(*old).flags == kHelloWantsDurable);

  std::string v2 = v1;
  StoreLE<uint32_t>(v2.data(), 2);
  AppendLE(v2, uint32_t{0});
  CHECK(Encode(HelloMsg{2, "s", "v", 7, nonce, 0}) == HandFrame(1, v2));
  Result<Message> lazy = DecodeFrame(HandFrame(1, v2));
  REQUIRE(lazy.ok());
  CHECK(std::get<HelloMsg>(*lazy).flags == 0);

  // Undefined flag bits are refused on both ends; a version 2 HELLO without flags too.
  CHECK_FALSE(EncodeFrame(HelloMsg{2, "s", "v", 7, nonce, 2}).ok());
  StoreLE<uint32_t>(v2.data() + v2.size() - 4, 2);
  CHECK_FALSE(DecodeFrame(HandFrame(1, v2)).ok());
  v2.resize(v2.size() - 4);
  CHECK_FALSE(DecodeFrame(HandFrame(1, v2)).ok());
}

TEST_CASE("ResyncAndQueryFramesHaveTheDocumentedLayout") {
  // Payloads built by hand from docs/formats.md, field by field.
  std::string resync;
  AppendLE(resync, uint64_t{4001});
  CHECK(Encode(ResyncMsg{4001}) == HandFrame(12, resync));
  std::string done;
  AppendLE(done, uint64_t{4100});
  CHECK(Encode(ResyncDoneMsg{4100}) == HandFrame(13, done));
  std::string request;
  AppendLE(request, uint64_t{77});
  AppendLE(request, uint32_t{1});
  CHECK(Encode(ManifestRequestMsg{77, 1}) == HandFrame(14, request));
  std::string manifest;
  AppendLE(manifest, uint64_t{77});
  AppendLE(manifest, uint32_t{1});
  AppendLE(manifest, uint32_t{3});
  manifest += "bad";
  AppendLE(manifest, uint32_t{2});
  manifest += "xy";
  CHECK(Encode(ManifestMsg{77, 1, "bad", "xy"}) == HandFrame(15, manifest));
  std::string sums_request;
  AppendLE(sums_request, uint64_t{78});
  AppendLE(sums_request, uint32_t{3});
  sums_request += "a/b";
  AppendLE(sums_request, uint32_t{4096});
  CHECK(Encode(SumsRequestMsg{78, "a/b", 4096}) == HandFrame(16, sums_request));
  std::string sums;
  AppendLE(sums, uint64_t{78});
  AppendLE(sums, uint32_t{0});
  AppendLE(sums, uint64_t{4097});
  AppendLE(sums, uint32_t{32});
  sums += std::string(32, 's');
  CHECK(Encode(SumsMsg{78, "", 4097, std::string(32, 's')}) == HandFrame(17, sums));
}

TEST_CASE("ResyncAndQueryFieldRulesAreCheckedOnBothEnds") {
  auto refused = [](const Message& msg, const std::string& field, uint16_t type,
                    const std::string& payload, const std::string& what) {
    CAPTURE(field);
    Result<std::string> enc = EncodeFrame(msg);
    REQUIRE_FALSE(enc.ok());
    CHECK(enc.status().message().find("field '" + field + "'") != std::string::npos);
    WireError refusal{};
    const std::string text = ErrorText(HandFrame(type, payload), &refusal);
    CHECK(refusal == WireError::kProtocol);
    CHECK_MESSAGE(text.find(what) != std::string::npos, text);
  };
  std::string p;
  AppendLE(p, uint64_t{0});
  refused(ResyncMsg{0}, "next_seq", 12, p,
          "resync frame: field 'next_seq' at byte 24: is 0 (sequence numbers start at 1)");

  p.clear();
  AppendLE(p, uint64_t{5});
  AppendLE(p, uint32_t{3});
  refused(ManifestRequestMsg{5, 3}, "flags", 14, p, "field 'flags' at byte 32: has undefined bits");
  p.clear();
  AppendLE(p, uint64_t{5});
  AppendLE(p, uint32_t{0x80000000u});
  CHECK_FALSE(DecodeFrame(HandFrame(14, p)).ok());

  p.clear();
  AppendLE(p, uint64_t{5});
  AppendLE(p, uint32_t{2});
  AppendLE(p, uint32_t{0});
  AppendLE(p, uint32_t{0});
  refused(ManifestMsg{5, 2, "", ""}, "last", 15, p, "field 'last' at byte 32: is 2, not 0 or 1");

  for (uint32_t bad : {0u, 2048u, 4095u, 4097u, 12288u, 32u << 20, 0x80000000u}) {
    CAPTURE(bad);
    p.clear();
    AppendLE(p, uint64_t{5});
    AppendLE(p, uint32_t{1});
    p += "f";
    AppendLE(p, bad);
    refused(SumsRequestMsg{5, "f", bad}, "block_size", 16, p,
            "field 'block_size' at byte 37: is " + std::to_string(bad) + ", not a power of two");
  }
  for (uint32_t good : {4096u, 8192u, 1u << 20, 16u << 20}) {
    CAPTURE(good);
    Result<std::string> enc = EncodeFrame(SumsRequestMsg{5, "f", good});
    REQUIRE(enc.ok());
    CHECK(DecodeFrame(*enc).ok());
  }

  p.clear();
  AppendLE(p, uint64_t{5});
  AppendLE(p, uint32_t{0});
  AppendLE(p, uint64_t{100});
  AppendLE(p, uint32_t{17});
  p += std::string(17, 's');
  refused(SumsMsg{5, "", 100, std::string(17, 's')}, "sums", 17, p,
          "field 'sums' at byte 44: is 17 bytes, not a whole number of 16-byte sums");
}

TEST_CASE("ResyncAndQueryBulkFieldsHaveLimits") {
  // MANIFEST entries: 4 MiB exactly is fine, one byte more is refused on both ends.
  const std::string at_limit(kMaxManifestEntriesBytes, 'e');
  Result<std::string> big = EncodeFrame(ManifestMsg{1, 1, "", at_limit});
  REQUIRE(big.ok());
  CHECK(big->size() - kFrameHeaderSize <= kMaxQueryReplyPayload);
  Result<Message> back = DecodeFrame(*big);
  REQUIRE(back.ok());
  CHECK(std::get<ManifestMsg>(*back).entries == at_limit);
  Result<std::string> over = EncodeFrame(ManifestMsg{1, 1, "", at_limit + "e"});
  REQUIRE_FALSE(over.ok());
  CHECK(over.status().message().find("field 'entries': is 4194305 bytes, more than 4194304") !=
        std::string::npos);
  std::string p;
  AppendLE(p, uint64_t{1});
  AppendLE(p, uint32_t{1});
  AppendLE(p, uint32_t{0});
  AppendLE(p, uint32_t{kMaxManifestEntriesBytes + 1});  // refused before it is read
  CHECK(ErrorText(HandFrame(15, p))
            .find("field 'entries' at byte 40: length 4194305 is more "
                  "than 4194304") != std::string::npos);

  // SUMS: 4 MiB of sums (262144 blocks) with a 4 KiB error text is the largest answer.
  const std::string sums(kMaxBlockSumsBytes, 's');
  Result<std::string> full = EncodeFrame(SumsMsg{2, std::string(5000, 'x'), 1, sums});
  REQUIRE(full.ok());
  CHECK(full->size() - kFrameHeaderSize <= kMaxQueryReplyPayload);
  Result<Message> sums_back = DecodeFrame(*full);
  REQUIRE(sums_back.ok());
  CHECK(std::get<SumsMsg>(*sums_back).error == std::string(kMaxErrorMessageBytes, 'x'));
  CHECK_FALSE(EncodeFrame(SumsMsg{2, "", 1, sums + std::string(16, 's')}).ok());

  // SUMS_REQUEST path: at most kMaxPathBytes; its rules are mirrord's to check.
  CHECK(EncodeFrame(SumsRequestMsg{3, std::string(kMaxPathBytes, 'p'), 4096}).ok());
  CHECK(EncodeFrame(SumsRequestMsg{3, "../etc/passwd", 4096}).ok());
  Result<std::string> long_path =
      EncodeFrame(SumsRequestMsg{3, std::string(kMaxPathBytes + 1, 'p'), 4096});
  REQUIRE_FALSE(long_path.ok());
  CHECK(long_path.status().message().find("field 'path'") != std::string::npos);
  p.clear();
  AppendLE(p, uint64_t{3});
  AppendLE(p, uint32_t{kMaxPathBytes + 1});
  p += std::string(kMaxPathBytes + 1, 'p');
  AppendLE(p, uint32_t{4096});
  CHECK(ErrorText(HandFrame(16, p))
            .find("field 'path' at byte 32: length 4096 is more than "
                  "4095") != std::string::npos);
}
