#include "common/frame.h"

#include <cstring>
#include <iterator>

#include "common/crc32c.h"
#include "common/endian.h"
#include "common/quote.h"
#include "common/record.h"

namespace mirror::common {
namespace {

constexpr size_t kLengthOffset = 4;
constexpr size_t kCrcOffset = 8;
constexpr size_t kTypeOffset = 12;
constexpr size_t kFlagsOffset = 14;
constexpr size_t kReservedOffset = 16;

using FieldRule = Status (*)(uint64_t);
using BytesRule = Status (*)(std::string_view);

std::string At(size_t frame_offset) { return " at byte " + std::to_string(frame_offset); }
std::string Quote(std::string_view name) { return QuoteForMessage(name, '\''); }

// Ids name directories on mirrord (STATE_DIR/<source_id>/), so they must be one
// harmless path component; the rule is checked on both ends.
Status CheckId(std::string_view id) {
  if (id.empty()) return Status::InvalidArgument("is empty");
  if (id.size() > kMaxWireIdBytes) {
    return Status::InvalidArgument("is " + std::to_string(id.size()) + " bytes, more than " +
                                   std::to_string(kMaxWireIdBytes));
  }
  if (id == "." || id == "..") return Status::InvalidArgument("is '.' or '..'");
  if (size_t bad = id.find_first_of(std::string_view("/\0", 2)); bad != std::string_view::npos) {
    return Status::InvalidArgument("contains a '/' or NUL at byte " + std::to_string(bad));
  }
  return {};
}

// Walks record headers in `bytes` and counts whole records; `base` is the frame
// offset of bytes[0], for messages.
Result<uint32_t> CountRecords(std::string_view bytes, size_t base) {
  uint32_t n = 0;
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t left = bytes.size() - pos;
    const std::string where = "record " + std::to_string(n) + At(base + pos);
    if (left < kRecordHeaderSize) {
      return Status::Corruption(where + ": " + std::to_string(left) +
                                " bytes left, less than a record header");
    }
    const uint32_t len = LoadLE<uint32_t>(bytes.data() + pos);
    if (len < kRecordHeaderSize) {
      return Status::Corruption(where + ": length " + std::to_string(len) +
                                " is less than a record header");
    }
    if (len > left) {
      return Status::Corruption(where + ": length " + std::to_string(len) + " runs past the end (" +
                                std::to_string(left) + " bytes left)");
    }
    pos += len;
    ++n;
  }
  return n;
}

// Writes a message's fixed fields into `out` (the bulk record bytes are referenced).
class Encoder {
 public:
  Encoder(std::string& out, std::vector<std::string_view>& bulk) : out_(out), bulk_(bulk) {}
  void U32(uint32_t v, const char* name, FieldRule rule = nullptr) {
    Check(rule, v, name);
    AppendLE(out_, v);
  }
  void U64(uint64_t v, const char* name, FieldRule rule = nullptr) {
    Check(rule, v, name);
    AppendLE(out_, v);
  }
  void Code(WireError c, const char*) { AppendLE(out_, static_cast<uint32_t>(c)); }
  template <size_t N>
  void Fixed(const std::array<uint8_t, N>& a, const char*) {
    out_.append(AsBytes(a));
  }
  void Id(const std::string& id, const char* name) {
    if (Status s = CheckId(id); !s.ok()) return Fail(s, name);
    String(id);
  }
  // Truncated rather than refused: an ERROR must always be sendable.
  void Text(const std::string& text, const char*) {
    String(std::string_view(text).substr(0, kMaxErrorMessageBytes));
  }
  void Bytes(const std::string& bytes, uint32_t max, const char* name, BytesRule rule = nullptr) {
    if (bytes.size() > max) {
      return Fail(Status::InvalidArgument("is " + std::to_string(bytes.size()) +
                                          " bytes, more than " + std::to_string(max)),
                  name);
    }
    if (rule != nullptr) {
      if (Status s = rule(bytes); !s.ok()) return Fail(s, name);
    }
    String(bytes);
  }
  void Records(std::string_view records, uint32_t count, const char* name) {
    Result<uint32_t> n = CountRecords(records, 0);
    if (!n.ok()) return Fail(n.status(), name);
    if (*n != count || count == 0) {
      return Fail(Status::InvalidArgument("count " + std::to_string(count) + " but " +
                                          std::to_string(*n) + " records"),
                  name);
    }
    bulk_.push_back(records);
  }
  const Status& status() const { return status_; }

 private:
  void String(std::string_view s) {
    AppendLE(out_, static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void Check(FieldRule rule, uint64_t v, const char* name) {
    if (rule == nullptr) return;
    if (Status s = rule(v); !s.ok()) Fail(s, name);
  }
  void Fail(const Status& s, const char* name) {
    if (status_.ok())
      status_ = Status::InvalidArgument("field " + Quote(name) + ": " + s.message());
  }

  std::string& out_;
  std::vector<std::string_view>& bulk_;
  Status status_;
};

// Reads a payload field by field; the first error stops the walk and names the
// field and its byte offset in the frame.
class Decoder {
 public:
  explicit Decoder(std::string_view payload) : in_(payload) {}
  void U32(uint32_t& v, const char* name, FieldRule rule = nullptr) {
    const size_t start = pos_;
    if (Load(v, name)) Check(rule, v, name, start);
  }
  void U64(uint64_t& v, const char* name, FieldRule rule = nullptr) {
    const size_t start = pos_;
    if (Load(v, name)) Check(rule, v, name, start);
  }
  void Code(WireError& c, const char* name) {
    uint32_t v = 0;
    if (Load(v, name)) c = static_cast<WireError>(v);
  }
  template <size_t N>
  void Fixed(std::array<uint8_t, N>& a, const char* name) {
    if (!Need(N, name)) return;
    std::memcpy(a.data(), in_.data() + pos_, N);
    pos_ += N;
  }
  void Id(std::string& id, const char* name) {
    const size_t start = pos_;
    if (!String(id, kMaxWireIdBytes, name)) return;
    if (Status s = CheckId(id); !s.ok()) Fail(s.message(), name, start);
  }
  void Text(std::string& text, const char* name) { String(text, kMaxErrorMessageBytes, name); }
  void Bytes(std::string& bytes, uint32_t max, const char* name, BytesRule rule = nullptr) {
    const size_t start = pos_;
    if (!String(bytes, max, name) || rule == nullptr) return;
    if (Status s = rule(bytes); !s.ok()) Fail(s.message(), name, start);
  }
  void Records(std::string_view& records, uint32_t count, const char* name) {
    if (!status_.ok()) return;
    const size_t start = pos_;
    records = in_.substr(pos_);
    pos_ = in_.size();
    if (count == 0) return Fail("count is 0", name, start);
    Result<uint32_t> n = CountRecords(records, kFrameHeaderSize + start);
    if (!n.ok()) return Fail(n.status().message(), name, start);
    if (*n != count) {
      Fail("the header's count is " + std::to_string(count) + " but the payload holds " +
               std::to_string(*n) + " records",
           name, start);
    }
  }

  Status Finish() const {
    if (!status_.ok()) return status_;
    if (pos_ != in_.size()) {
      return Status::Corruption(std::to_string(in_.size() - pos_) + " trailing bytes" +
                                At(kFrameHeaderSize + pos_) + " after the last field");
    }
    return {};
  }

 private:
  void Check(FieldRule rule, uint64_t v, const char* name, size_t start) {
    if (rule == nullptr) return;
    if (Status s = rule(v); !s.ok()) Fail(s.message(), name, start);
  }
  bool Need(size_t n, const char* name) {
    if (!status_.ok()) return false;
    if (in_.size() - pos_ >= n) return true;
    Fail("runs past the end of the payload (" + std::to_string(in_.size() - pos_) +
             " bytes left, needs " + std::to_string(n) + ")",
         name, pos_);
    return false;
  }
  template <class T>
  bool Load(T& v, const char* name) {
    if (!Need(sizeof(T), name)) return false;
    v = LoadLE<T>(in_.data() + pos_);
    pos_ += sizeof(T);
    return true;
  }
  bool String(std::string& s, uint32_t max, const char* name) {
    const size_t start = pos_;
    uint32_t len = 0;
    if (!Load(len, name)) return false;
    if (len > max) {
      Fail("length " + std::to_string(len) + " is more than " + std::to_string(max), name, start);
      return false;
    }
    if (!Need(len, name)) return false;
    s.assign(in_.data() + pos_, len);
    pos_ += len;
    return true;
  }
  void Fail(const std::string& what, const char* name, size_t payload_pos) {
    if (!status_.ok()) return;
    status_ = Status::Corruption("field " + Quote(name) + At(kFrameHeaderSize + payload_pos) +
                                 ": " + what);
  }

  std::string_view in_;
  size_t pos_ = 0;
  Status status_;
};

template <class T>
Result<Message> DecodeAs(std::string_view payload) {
  T msg;
  Decoder d(payload);
  msg.Visit(d);
  MIRROR_RETURN_IF_ERROR(d.Finish());
  return Message(std::move(msg));
}

}  // namespace

namespace frame_rules {

Status NotZero(uint64_t v) {
  if (v == 0) return Status::InvalidArgument("is 0 (sequence numbers start at 1)");
  return {};
}

Status ZeroOrOne(uint64_t v) {
  if (v > 1) return Status::InvalidArgument("is " + std::to_string(v) + ", not 0 or 1");
  return {};
}

Status ManifestFlags(uint64_t v) {
  if ((v & ~uint64_t{kManifestWantContentHashes}) != 0) {
    return Status::InvalidArgument("has undefined bits set (" + std::to_string(v) +
                                   "; only bit 0, content hashes, is defined)");
  }
  return {};
}

Status HelloFlags(uint64_t v) {
  if ((v & ~uint64_t{kHelloWantsDurable}) != 0) {
    return Status::InvalidArgument("has undefined bits set (" + std::to_string(v) +
                                   "; only bit 0, wants durable, is defined)");
  }
  return {};
}

Status SumsBlockSize(uint64_t v) {
  if (v < kMinSumsBlockSize || v > kMaxSumsBlockSize || (v & (v - 1)) != 0) {
    return Status::InvalidArgument("is " + std::to_string(v) + ", not a power of two from " +
                                   std::to_string(kMinSumsBlockSize) + " to " +
                                   std::to_string(kMaxSumsBlockSize));
  }
  return {};
}

Status WholeBlockSums(std::string_view v) {
  if (v.size() % kBlockSumBytes != 0) {
    return Status::InvalidArgument("is " + std::to_string(v.size()) +
                                   " bytes, not a whole number of " +
                                   std::to_string(kBlockSumBytes) + "-byte sums");
  }
  return {};
}

}  // namespace frame_rules

std::string_view FrameTypeName(FrameType type) {
  static constexpr std::string_view kNames[] = {
      "invalid", "hello",       "challenge",        "auth",     "welcome",      "records",
      "ack",     "sync",        "sync_done",        "error",    "ping",         "pong",
      "resync",  "resync_done", "manifest_request", "manifest", "sums_request", "sums"};
  static_assert(std::size(kNames) == kMaxFrameType + 1);
  const auto i = static_cast<uint16_t>(type);
  return i <= kMaxFrameType ? kNames[i] : "unknown";
}

std::string_view WireErrorName(WireError code) {
  static constexpr std::string_view kNames[] = {
      "unknown",  "wrong-secret", "unknown-source", "stale-epoch", "sequence-gap",
      "bad-crc",  "oversized",    "unknown-type",   "escape",      "device-refused",
      "protocol", "internal",     "shutting-down"};
  const auto i = static_cast<uint32_t>(code);
  return i <= kMaxWireError ? kNames[i] : "unknown";
}

Result<FrameHeader> DecodeFrameHeader(std::string_view bytes, const FrameLimits& limits,
                                      WireError* refusal) {
  auto refuse = [refusal](WireError code, std::string msg) {
    if (refusal != nullptr) *refusal = code;
    return Status::Corruption("frame header: " + std::move(msg));
  };
  if (bytes.size() < kFrameHeaderSize) {
    return refuse(WireError::kProtocol, "only " + std::to_string(bytes.size()) + " bytes, needs " +
                                            std::to_string(kFrameHeaderSize));
  }
  if (std::memcmp(bytes.data(), kFrameMagic, sizeof kFrameMagic) != 0) {
    return refuse(
        WireError::kProtocol, "bad magic 0x" + [&] {
          static constexpr char kHex[] = "0123456789abcdef";
          std::string hex;
          for (size_t i = 0; i < 4; ++i) {
            const auto b = static_cast<unsigned char>(bytes[i]);
            hex += kHex[b >> 4];
            hex += kHex[b & 15];
          }
          return hex;
        }() + At(0) + " (not a mirrorfs frame of format version 1)");
  }
  FrameHeader h;
  h.length = LoadLE<uint32_t>(bytes.data() + kLengthOffset);
  h.masked_crc = LoadLE<uint32_t>(bytes.data() + kCrcOffset);
  const auto type = LoadLE<uint16_t>(bytes.data() + kTypeOffset);
  const auto flags = LoadLE<uint16_t>(bytes.data() + kFlagsOffset);
  const auto reserved = LoadLE<uint64_t>(bytes.data() + kReservedOffset);
  if (h.length > limits.max_payload) {
    return refuse(WireError::kOversized, "length " + std::to_string(h.length) + At(kLengthOffset) +
                                             " is over the limit of " +
                                             std::to_string(limits.max_payload));
  }
  if (type == 0 || type > kMaxFrameType) {
    return refuse(WireError::kUnknownType,
                  "unknown type " + std::to_string(type) + At(kTypeOffset));
  }
  if (flags != 0) {
    return refuse(WireError::kProtocol,
                  "flags " + std::to_string(flags) + At(kFlagsOffset) + " are not 0");
  }
  if (reserved != 0)
    return refuse(WireError::kProtocol, "reserved" + At(kReservedOffset) + " is not 0");
  h.type = static_cast<FrameType>(type);
  return h;
}

Status CheckFramePayload(const FrameHeader& h, std::string_view payload) {
  if (payload.size() != h.length) {
    return Status::InvalidArgument("payload is " + std::to_string(payload.size()) +
                                   " bytes, header says " + std::to_string(h.length));
  }
  // The CRC covers type, flags and reserved too: rebuild them as DecodeFrameHeader
  // accepted them (known type, zeros).
  char fixed[kFrameHeaderSize - kFrameCrcStart] = {};
  StoreLE(fixed, static_cast<uint16_t>(h.type));
  uint32_t crc = crc32c::Value(fixed, sizeof fixed);
  crc = crc32c::Extend(crc, payload.data(), payload.size());
  if (crc32c::Mask(crc) != h.masked_crc) {
    return Status::Corruption(
        std::string(FrameTypeName(h.type)) + " frame: CRC mismatch over bytes [12, " +
        std::to_string(kFrameHeaderSize + h.length) + "): stored " + std::to_string(h.masked_crc) +
        ", computed " + std::to_string(crc32c::Mask(crc)));
  }
  return {};
}

FrameType MessageType(const Message& msg) {
  return std::visit([](const auto& m) { return std::decay_t<decltype(m)>::kType; }, msg);
}

Result<Message> DecodeMessage(FrameType type, std::string_view payload) {
  Result<Message> r = [&]() -> Result<Message> {
    switch (type) {
      case FrameType::kHello:
        return DecodeAs<HelloMsg>(payload);
      case FrameType::kChallenge:
        return DecodeAs<ChallengeMsg>(payload);
      case FrameType::kAuth:
        return DecodeAs<AuthMsg>(payload);
      case FrameType::kWelcome:
        return DecodeAs<WelcomeMsg>(payload);
      case FrameType::kRecords:
        return DecodeAs<RecordsMsg>(payload);
      case FrameType::kAck:
        return DecodeAs<AckMsg>(payload);
      case FrameType::kSync:
        return DecodeAs<SyncMsg>(payload);
      case FrameType::kSyncDone:
        return DecodeAs<SyncDoneMsg>(payload);
      case FrameType::kError:
        return DecodeAs<ErrorMsg>(payload);
      case FrameType::kPing:
        return DecodeAs<PingMsg>(payload);
      case FrameType::kPong:
        return DecodeAs<PongMsg>(payload);
      case FrameType::kResync:
        return DecodeAs<ResyncMsg>(payload);
      case FrameType::kResyncDone:
        return DecodeAs<ResyncDoneMsg>(payload);
      case FrameType::kManifestRequest:
        return DecodeAs<ManifestRequestMsg>(payload);
      case FrameType::kManifest:
        return DecodeAs<ManifestMsg>(payload);
      case FrameType::kSumsRequest:
        return DecodeAs<SumsRequestMsg>(payload);
      case FrameType::kSums:
        return DecodeAs<SumsMsg>(payload);
    }
    return Status::Corruption("unknown type " + std::to_string(static_cast<uint16_t>(type)));
  }();
  if (!r.ok()) return r.status().Annotate(std::string(FrameTypeName(type)) + " frame");
  return r;
}

Result<Message> DecodeFrame(std::string_view bytes, const FrameLimits& limits, WireError* refusal) {
  MIRROR_ASSIGN_OR_RETURN(FrameHeader h, DecodeFrameHeader(bytes, limits, refusal));
  if (bytes.size() != kFrameHeaderSize + h.length) {
    if (refusal != nullptr) *refusal = WireError::kProtocol;
    return Status::Corruption(std::string(FrameTypeName(h.type)) +
                              " frame: " + std::to_string(bytes.size()) + " bytes, header says " +
                              std::to_string(kFrameHeaderSize + h.length));
  }
  std::string_view payload = bytes.substr(kFrameHeaderSize);
  if (Status s = CheckFramePayload(h, payload); !s.ok()) {
    if (refusal != nullptr) *refusal = WireError::kBadCrc;
    return s;
  }
  Result<Message> msg = DecodeMessage(h.type, payload);
  if (!msg.ok() && refusal != nullptr) *refusal = WireError::kProtocol;
  return msg;
}

Status EncodedFrame::Build(const Message& msg) {
  head_.assign(kFrameHeaderSize, '\0');
  bulk_.clear();
  Encoder e(head_, bulk_);
  std::visit(
      [&e](const auto& m) {
        auto fields = m;  // Visit() is not const; the copy is small (RECORDS holds a view)
        fields.Visit(e);
      },
      msg);
  Status s = e.status();
  if (s.ok() && size() - kFrameHeaderSize > UINT32_MAX) {
    s = Status::InvalidArgument("payload of " + std::to_string(size() - kFrameHeaderSize) +
                                " bytes does not fit the u32 length");
  }
  if (!s.ok()) {
    head_.clear();
    bulk_.clear();
    return s.Annotate(std::string(FrameTypeName(MessageType(msg))) + " frame");
  }
  Seal(MessageType(msg));
  return {};
}

Status EncodedFrame::BuildRecords(uint64_t first_seq, std::span<const std::string_view> records) {
  head_.assign(kFrameHeaderSize, '\0');
  bulk_.clear();
  uint64_t count = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    Result<uint32_t> n = CountRecords(records[i], 0);
    if (!n.ok()) {
      head_.clear();
      return n.status().Annotate("records frame: piece " + std::to_string(i));
    }
    count += *n;
    if (!records[i].empty()) bulk_.push_back(records[i]);
  }
  if (count == 0 || count > UINT32_MAX || size() - kFrameHeaderSize + 12 > UINT32_MAX) {
    head_.clear();
    bulk_.clear();
    return Status::InvalidArgument("records frame: " + std::to_string(count) +
                                   " records (needs 1 to 2^32-1, under 4 GiB)");
  }
  AppendLE(head_, first_seq);
  AppendLE(head_, static_cast<uint32_t>(count));
  Seal(FrameType::kRecords);
  return {};
}

size_t EncodedFrame::size() const {
  size_t n = head_.size();
  for (std::string_view b : bulk_) n += b.size();
  return n;
}

std::string EncodedFrame::ToBytes() const {
  std::string out;
  out.reserve(size());
  out.append(head_);
  for (std::string_view b : bulk_) out.append(b);
  return out;
}

void EncodedFrame::Seal(FrameType type) {
  const size_t payload = size() - kFrameHeaderSize;
  std::memcpy(head_.data(), kFrameMagic, sizeof kFrameMagic);
  StoreLE(head_.data() + kLengthOffset, static_cast<uint32_t>(payload));
  StoreLE(head_.data() + kTypeOffset, static_cast<uint16_t>(type));
  uint32_t crc = crc32c::Value(head_.data() + kFrameCrcStart, head_.size() - kFrameCrcStart);
  for (std::string_view b : bulk_) crc = crc32c::Extend(crc, b.data(), b.size());
  StoreLE(head_.data() + kCrcOffset, crc32c::Mask(crc));
}

Result<std::string> EncodeFrame(const Message& msg) {
  EncodedFrame f;
  MIRROR_RETURN_IF_ERROR(f.Build(msg));
  return f.ToBytes();
}

}  // namespace mirror::common
