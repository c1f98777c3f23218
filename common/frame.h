// The wire format between mirrorfs (the source) and mirrord (docs/formats.md, "Wire
// frames and handshake", format version 1): one frame per message on a byte stream.
//
//   offset size field
//   0      4    magic         "MFS1" (the bytes 'M' 'F' 'S' '1'; the '1' is the version)
//   4      4    length        payload bytes (not counting this header)
//   8      4    masked crc    CRC32C of bytes [12, 24 + length), masked (crc32c::Mask)
//   12     2    type          FrameType; 0 is never valid
//   14     2    flags         0 in format version 1
//   16     8    reserved      0 (keeps the payload 8-byte aligned in a reader's buffer)
//   24     ...  payload       the message's fields, in the order its Visit() lists them
//
// Integers are little-endian; strings are a u32 length then the bytes. A reader
// takes the 24 header bytes, calls DecodeFrameHeader (which refuses an oversized
// length before anything is allocated), reads `length` more bytes, calls
// CheckFramePayload (CRC) and then DecodeMessage. Nothing trusts the bytes: every
// error names the field and its byte offset in the frame.
//
// This is a pure codec: no sockets. Thread-safety: all functions are pure; an
// EncodedFrame is owned by one thread.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/hmac.h"
#include "common/record.h"
#include "common/status.h"

namespace mirror::common {

// Version 2 added HELLO's flags. A mirrord accepts versions 1 and 2 (a version 1 HELLO
// reads as flags kHelloWantsDurable: what every version 1 source got).
inline constexpr uint32_t kWireProtocolVersion = 2;
inline constexpr uint32_t kMinWireProtocolVersion = 1;
inline constexpr size_t kFrameHeaderSize = 24;
inline constexpr size_t kFrameCrcStart = 12;  // the CRC covers [12, 24 + length)
inline constexpr char kFrameMagic[4] = {'M', 'F', 'S', '1'};
inline constexpr size_t kNonceBytes = 32;
inline constexpr size_t kProofBytes = kHmacSha256Bytes;
inline constexpr uint32_t kMaxWireIdBytes = 127;         // source_id, volume_id
inline constexpr uint32_t kMaxErrorMessageBytes = 4096;  // ERROR's message
// Room for a batch of a few maximal records; mirrord and mirrorfs pass their own.
inline constexpr uint32_t kDefaultMaxFramePayload = 8u << 20;

// Image queries (MANIFEST_REQUEST, SUMS_REQUEST) and their answers.
inline constexpr uint32_t kManifestWantContentHashes = 1;       // MANIFEST_REQUEST flags bit 0
// HELLO flags bit 0: the source's writers wait for durable ACKs (mode=durable), so
// mirrord flushes its records promptly (flush_delay) rather than lazily.
inline constexpr uint32_t kHelloWantsDurable = 1;
inline constexpr uint32_t kMaxManifestEntriesBytes = 4u << 20;  // MANIFEST's entries
inline constexpr uint32_t kManifestChunkBytes = 1u << 20;       // what mirrord puts in one MANIFEST
inline constexpr uint32_t kBlockSumBytes = 16;                  // one common::BlockSum
inline constexpr uint32_t kMaxBlockSumsBytes = 4u << 20;        // SUMS's sums (262144 blocks)
inline constexpr uint32_t kMinSumsBlockSize = 4096;             // SUMS_REQUEST block_size: a
inline constexpr uint32_t kMaxSumsBlockSize = 16u << 20;        //   power of two in this range
// The largest MANIFEST or SUMS payload (bulk at its limit, a 4 KiB error text and the
// fixed fields): what a source must be ready to read.
inline constexpr uint32_t kMaxQueryReplyPayload = (4u << 20) + 8192;

using Nonce = std::array<uint8_t, kNonceBytes>;
using Proof = std::array<uint8_t, kProofBytes>;

enum class FrameType : uint16_t {
  kHello = 1,      // source -> mirrord
  kChallenge = 2,  // mirrord -> source
  kAuth = 3,       // source -> mirrord
  kWelcome = 4,    // mirrord -> source
  kRecords = 5,    // source -> mirrord
  kAck = 6,        // mirrord -> source
  kSync = 7,       // source -> mirrord
  kSyncDone = 8,   // mirrord -> source
  kError = 9,      // either way; the sender closes after it
  kPing = 10,      // either way
  kPong = 11,      // the answer to a PING, same token
  // Resync, baseline and verify (issue 5):
  kResync = 12,           // source -> mirrord: the stream restarts at next_seq
  kResyncDone = 13,       // source -> mirrord: the resync ends with through_seq
  kManifestRequest = 14,  // source -> mirrord: list the image
  kManifest = 15,         // mirrord -> source: a part of the list
  kSumsRequest = 16,      // source -> mirrord: block sums of one image file
  kSums = 17,             // mirrord -> source: the sums
};
inline constexpr uint16_t kMaxFrameType = 17;
std::string_view FrameTypeName(FrameType type);  // "hello", "records", ...

// The code of an ERROR frame. Values are part of the format: never renumber.
enum class WireError : uint32_t {
  kWrongSecret = 1,    // the proof does not match the source's secret
  kUnknownSource = 2,  // no such source id in mirrord's configuration
  kStaleEpoch = 3,     // fenced: the source was promoted at a later epoch
  kSequenceGap = 4,    // a gap or a duplicate in sequence numbers
  kBadCrc = 5,         // a frame or record fails its CRC
  kOversized = 6,      // a frame or record over the limit
  kUnknownType = 7,    // a frame or record type this side does not know
  kEscape = 8,         // a path that would leave the image
  kDeviceRefused = 9,  // a device node from a source not allowed to create them
  kProtocol = 10,      // malformed or out-of-order frame, wrong protocol version
  kInternal = 11,      // the sender failed on its own (disk, ...)
  kShuttingDown = 12,  // the sender is stopping; reconnect later
};
inline constexpr uint32_t kMaxWireError = 12;
// Short, stable names for logs: "wrong-secret", "stale-epoch", ...; "unknown" otherwise.
std::string_view WireErrorName(WireError code);

struct FrameLimits {
  uint32_t max_payload = kDefaultMaxFramePayload;
};

struct FrameHeader {
  uint32_t length = 0;  // payload bytes
  uint32_t masked_crc = 0;
  FrameType type{};
};

// Checks what the 24 header bytes alone can tell: magic, a length within the limit,
// a known type, zero flags and reserved. `bytes` must hold at least 24 bytes (more
// are ignored). On failure, `*refusal` (when given) is the ERROR code to answer with.
Result<FrameHeader> DecodeFrameHeader(std::string_view bytes, const FrameLimits& limits = {},
                                      WireError* refusal = nullptr);
// Checks that `payload` (exactly header.length bytes) matches the header's CRC.
Status CheckFramePayload(const FrameHeader& header, std::string_view payload);

// Rules of single fields, checked by the encoder (a message that breaks one is not
// sent) and the decoder (a frame that breaks one is refused with `protocol`).
namespace frame_rules {
Status NotZero(uint64_t v);                 // RESYNC next_seq
Status ZeroOrOne(uint64_t v);               // MANIFEST last
Status ManifestFlags(uint64_t v);           // only kManifestWantContentHashes
Status HelloFlags(uint64_t v);              // only kHelloWantsDurable
Status SumsBlockSize(uint64_t v);           // a power of two in [4 KiB, 16 MiB]
Status WholeBlockSums(std::string_view v);  // a multiple of kBlockSumBytes
}  // namespace frame_rules

// ---- Messages: one struct per frame type. Each lists its fields once in Visit();
// encoding and decoding both walk that list. Visitor fields: U32/U64 (optionally with a
// rule), Fixed (N bytes), Id, Text (a string of at most 4096 bytes, cut to that when
// encoded), Bytes (a u32 length and at most `max` bytes, optionally with a rule; never
// cut: a longer value is an error on both ends), Records.
struct HelloMsg {
  static constexpr FrameType kType = FrameType::kHello;
  uint32_t version = kWireProtocolVersion;
  std::string source_id;  // 1..127 bytes, no NUL, no '/'
  std::string volume_id;  // same rules
  uint64_t epoch = 0;
  Nonce client_nonce{};
  uint32_t flags = kHelloWantsDurable;  // from version 2 on; version 1 has no field
  template <class V>
  void Visit(V& v) {
    v.U32(version, "version");
    v.Id(source_id, "source_id");
    v.Id(volume_id, "volume_id");
    v.U64(epoch, "epoch");
    v.Fixed(client_nonce, "client_nonce");
    if (version >= 2) v.U32(flags, "flags", &frame_rules::HelloFlags);
  }
  friend bool operator==(const HelloMsg&, const HelloMsg&) = default;
};
struct ChallengeMsg {
  static constexpr FrameType kType = FrameType::kChallenge;
  Nonce server_nonce{};
  template <class V>
  void Visit(V& v) {
    v.Fixed(server_nonce, "server_nonce");
  }
  friend bool operator==(const ChallengeMsg&, const ChallengeMsg&) = default;
};
struct AuthMsg {
  static constexpr FrameType kType = FrameType::kAuth;
  Proof proof{};
  template <class V>
  void Visit(V& v) {
    v.Fixed(proof, "proof");
  }
  friend bool operator==(const AuthMsg&, const AuthMsg&) = default;
};
struct WelcomeMsg {
  static constexpr FrameType kType = FrameType::kWelcome;
  Proof server_proof{};
  uint64_t resume_seq = 0;  // the next seq mirrord wants (durable_seq + 1)
  uint64_t durable_seq = 0;
  uint64_t applied_seq = 0;
  uint64_t epoch = 0;  // mirrord's stored epoch for this source
  template <class V>
  void Visit(V& v) {
    v.Fixed(server_proof, "server_proof");
    v.U64(resume_seq, "resume_seq");
    v.U64(durable_seq, "durable_seq");
    v.U64(applied_seq, "applied_seq");
    v.U64(epoch, "epoch");
  }
  friend bool operator==(const WelcomeMsg&, const WelcomeMsg&) = default;
};
// A batch of whole records (common/record.h bytes, unchanged) back to back. The
// decoder checks that `count` records tile `records` exactly by their header
// lengths; validating each record (DecodeRecord) and the sequence is the receiver's job.
// `records` points into the payload it was decoded from.
struct RecordsMsg {
  static constexpr FrameType kType = FrameType::kRecords;
  uint64_t first_seq = 0;
  uint32_t count = 0;
  std::string_view records;
  template <class V>
  void Visit(V& v) {
    v.U64(first_seq, "first_seq");
    v.U32(count, "count");
    v.Records(records, count, "records");
  }
  friend bool operator==(const RecordsMsg&, const RecordsMsg&) = default;
};
struct AckMsg {
  static constexpr FrameType kType = FrameType::kAck;
  uint64_t received_seq = 0;
  uint64_t durable_seq = 0;
  template <class V>
  void Visit(V& v) {
    v.U64(received_seq, "received_seq");
    v.U64(durable_seq, "durable_seq");
  }
  friend bool operator==(const AckMsg&, const AckMsg&) = default;
};
struct SyncMsg {
  static constexpr FrameType kType = FrameType::kSync;
  uint64_t cp_seq = 0;  // make durable and apply through this seq
  template <class V>
  void Visit(V& v) {
    v.U64(cp_seq, "cp_seq");
  }
  friend bool operator==(const SyncMsg&, const SyncMsg&) = default;
};
struct SyncDoneMsg {
  static constexpr FrameType kType = FrameType::kSyncDone;
  uint64_t applied_seq = 0;
  template <class V>
  void Visit(V& v) {
    v.U64(applied_seq, "applied_seq");
  }
  friend bool operator==(const SyncDoneMsg&, const SyncDoneMsg&) = default;
};
struct ErrorMsg {
  static constexpr FrameType kType = FrameType::kError;
  WireError code = WireError::kProtocol;  // unknown codes decode as they are
  std::string message;                    // at most 4 KiB, for the peer's log
  template <class V>
  void Visit(V& v) {
    v.Code(code, "code");
    v.Text(message, "message");
  }
  friend bool operator==(const ErrorMsg&, const ErrorMsg&) = default;
};
struct PingMsg {
  static constexpr FrameType kType = FrameType::kPing;
  uint64_t token = 0;
  template <class V>
  void Visit(V& v) {
    v.U64(token, "token");
  }
  friend bool operator==(const PingMsg&, const PingMsg&) = default;
};
struct PongMsg {
  static constexpr FrameType kType = FrameType::kPong;
  uint64_t token = 0;
  template <class V>
  void Visit(V& v) {
    v.U64(token, "token");
  }
  friend bool operator==(const PongMsg&, const PongMsg&) = default;
};

// ---- Resync, baseline and verify (docs/formats.md, "Wire protocol: what mirrord does").

// The source's stream restarts at next_seq (>= 1): mirrord drops every record it received
// but did not apply, and answers ACK(next_seq - 1, next_seq - 1).
struct ResyncMsg {
  static constexpr FrameType kType = FrameType::kResync;
  uint64_t next_seq = 1;
  template <class V>
  void Visit(V& v) {
    v.U64(next_seq, "next_seq", &frame_rules::NotZero);
  }
  friend bool operator==(const ResyncMsg&, const ResyncMsg&) = default;
};
// The differences are all sent: the image is consistent again once it is applied
// through through_seq (<= what mirrord received).
struct ResyncDoneMsg {
  static constexpr FrameType kType = FrameType::kResyncDone;
  uint64_t through_seq = 0;
  template <class V>
  void Visit(V& v) {
    v.U64(through_seq, "through_seq");
  }
  friend bool operator==(const ResyncDoneMsg&, const ResyncDoneMsg&) = default;
};
// List the image (common::BuildManifest) after applying everything sent before this.
struct ManifestRequestMsg {
  static constexpr FrameType kType = FrameType::kManifestRequest;
  uint64_t token = 0;  // echoed in every MANIFEST of the answer
  uint32_t flags = 0;  // kManifestWantContentHashes; other bits must be 0
  template <class V>
  void Visit(V& v) {
    v.U64(token, "token");
    v.U32(flags, "flags", &frame_rules::ManifestFlags);
  }
  friend bool operator==(const ManifestRequestMsg&, const ManifestRequestMsg&) = default;
};
// One part of the answer: common::EncodeManifestEntries bytes of whole entries, in walk
// order. The answer is one or more MANIFESTs with the request's token; the last has
// last = 1. An error ends the answer: last = 1, error set, no entries.
struct ManifestMsg {
  static constexpr FrameType kType = FrameType::kManifest;
  uint64_t token = 0;
  uint32_t last = 0;  // 0 or 1
  std::string error;  // empty: OK
  std::string entries;
  template <class V>
  void Visit(V& v) {
    v.U64(token, "token");
    v.U32(last, "last", &frame_rules::ZeroOrOne);
    v.Text(error, "error");
    v.Bytes(entries, kMaxManifestEntriesBytes, "entries");
  }
  friend bool operator==(const ManifestMsg&, const ManifestMsg&) = default;
};
// Block sums of the image's file at `path` (an entry path: mirrord checks the record
// path rules and refuses a path that breaks them with `escape`).
struct SumsRequestMsg {
  static constexpr FrameType kType = FrameType::kSumsRequest;
  uint64_t token = 0;
  std::string path;
  uint32_t block_size = kMinSumsBlockSize;
  template <class V>
  void Visit(V& v) {
    v.U64(token, "token");
    v.Bytes(path, kMaxPathBytes, "path");
    v.U32(block_size, "block_size", &frame_rules::SumsBlockSize);
  }
  friend bool operator==(const SumsRequestMsg&, const SumsRequestMsg&) = default;
};
// The answer: error empty and `sums` = kBlockSumBytes per block of `size` bytes (the
// last block may be short), or error "not found", "not a regular file" or a reason.
struct SumsMsg {
  static constexpr FrameType kType = FrameType::kSums;
  uint64_t token = 0;
  std::string error;
  uint64_t size = 0;
  std::string sums;
  template <class V>
  void Visit(V& v) {
    v.U64(token, "token");
    v.Text(error, "error");
    v.U64(size, "size");
    v.Bytes(sums, kMaxBlockSumsBytes, "sums", &frame_rules::WholeBlockSums);
  }
  friend bool operator==(const SumsMsg&, const SumsMsg&) = default;
};

using Message =
    std::variant<HelloMsg, ChallengeMsg, AuthMsg, WelcomeMsg, RecordsMsg, AckMsg, SyncMsg,
                 SyncDoneMsg, ErrorMsg, PingMsg, PongMsg, ResyncMsg, ResyncDoneMsg,
                 ManifestRequestMsg, ManifestMsg, SumsRequestMsg, SumsMsg>;
FrameType MessageType(const Message& msg);

// Decodes a payload already checked by DecodeFrameHeader and CheckFramePayload.
// Lengths must match exactly (no trailing bytes). RecordsMsg's view points into `payload`.
Result<Message> DecodeMessage(FrameType type, std::string_view payload);

// Convenience for tests and small readers: header, CRC and message of the frame at
// the start of `bytes`, which must hold exactly one whole frame.
Result<Message> DecodeFrame(std::string_view bytes, const FrameLimits& limits = {},
                            WireError* refusal = nullptr);

// A frame in pieces: head() is the header and the fixed fields, bulk() the record
// bytes referenced where they lie (a RECORDS batch is never copied into a staging
// buffer). A writer sends head() then each bulk piece (writev, asio buffer sequence).
// Views given to BuildRecords must outlive the EncodedFrame's use.
class EncodedFrame {
 public:
  // Fails if a field breaks its rule (an id too long, ...).
  Status Build(const Message& msg);
  // A RECORDS frame over whole encoded records; counts and checks their tiling.
  Status BuildRecords(uint64_t first_seq, std::span<const std::string_view> records);

  size_t size() const;
  std::string_view head() const { return head_; }
  const std::vector<std::string_view>& bulk() const { return bulk_; }
  std::string ToBytes() const;

 private:
  void Seal(FrameType type);  // fills the header of head_ over the payload

  std::string head_;
  std::vector<std::string_view> bulk_;
};

// The whole frame as one string (not for RECORDS batches on the hot path).
Result<std::string> EncodeFrame(const Message& msg);

}  // namespace mirror::common
