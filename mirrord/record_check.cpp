#include "mirrord/record_check.h"

#include <sys/stat.h>

#include <variant>

#include "common/crc32c.h"
#include "common/endian.h"

namespace mirror::d {
namespace {

using common::LoadLE;
using common::RecordType;
using common::WireError;

Refusal Refuse(WireError code, uint64_t seq, std::string what) {
  return {code, "record seq " + std::to_string(seq) + ": " + std::move(what)};
}

bool TakesNodePath(RecordType type) {
  switch (type) {
    case RecordType::kChmod:
    case RecordType::kChown:
    case RecordType::kUtimens:
    case RecordType::kSetxattr:
    case RecordType::kRemovexattr:
      return true;
    default:
      return false;
  }
}

// Reads the u32-length path at `*pos` and checks it with the path rules; advances *pos.
// nullopt when the bytes are too short to tell (then the decoder's error stands).
std::optional<common::Status> CheckPathAt(std::string_view rec, size_t* pos, bool node) {
  if (rec.size() - *pos < 4) return std::nullopt;
  const uint32_t len = LoadLE<uint32_t>(rec.data() + *pos);
  if (len > rec.size() - *pos - 4) return std::nullopt;
  std::string_view path = rec.substr(*pos + 4, len);
  *pos += 4 + len;
  return node ? common::CheckNodePath(path) : common::CheckEntryPath(path);
}

// Every record type but checkpoint starts its payload with a path; link and rename have
// a second one right after it (docs/formats.md, "Types and payloads").
std::optional<std::string> PathViolation(std::string_view rec, RecordType type) {
  if (type == RecordType::kCheckpoint) return std::nullopt;
  size_t pos = common::kRecordHeaderSize;
  std::optional<common::Status> first = CheckPathAt(rec, &pos, TakesNodePath(type));
  if (first && !first->ok()) return "field 'path': " + first->message();
  if (first && (type == RecordType::kLink || type == RecordType::kRename)) {
    std::optional<common::Status> second = CheckPathAt(rec, &pos, false);
    if (second && !second->ok()) return "field 'new_path': " + second->message();
  }
  return std::nullopt;
}

}  // namespace

std::optional<Refusal> CheckIncomingRecord(std::string_view bytes, const IncomingRecordRules& rules,
                                           uint32_t* length) {
  const uint64_t expected = rules.expected_seq;
  if (bytes.size() < common::kRecordHeaderSize) {
    return Refuse(WireError::kProtocol, expected, "shorter than a record header");
  }
  const uint32_t len = LoadLE<uint32_t>(bytes.data());
  const uint16_t type = LoadLE<uint16_t>(bytes.data() + 8);
  const uint64_t seq = LoadLE<uint64_t>(bytes.data() + 16);
  const uint64_t epoch = LoadLE<uint64_t>(bytes.data() + 24);
  if (len > rules.limits.max_record_bytes) {
    return Refuse(WireError::kOversized, seq,
                  "length " + std::to_string(len) + " is over the limit of " +
                      std::to_string(rules.limits.max_record_bytes) + " bytes");
  }
  if (len < common::kRecordHeaderSize || len > bytes.size()) {
    return Refuse(WireError::kProtocol, seq, "length " + std::to_string(len) + " does not fit");
  }
  // The common case decodes once (DecodeRecord checks the CRC); the checks below that
  // need a trustworthy header run after it. On failure, tell a bad CRC from a bad field.
  std::string_view rec = bytes.substr(0, len);
  common::Result<common::Record> decoded = common::DecodeRecord(rec, rules.limits);
  if (!decoded.ok()) {
    const uint32_t crc = common::crc32c::Mask(common::crc32c::Value(
        bytes.data() + common::kRecordCrcStart, len - common::kRecordCrcStart));
    const uint32_t stored = LoadLE<uint32_t>(bytes.data() + common::kRecordCrcOffset);
    if (stored != crc && stored != common::VoidedCrc(crc)) {
      return Refuse(WireError::kBadCrc, seq, "CRC mismatch");
    }
    if (type == 0 || type > common::kMaxRecordType) {
      return Refuse(WireError::kUnknownType, seq, "unknown record type " + std::to_string(type));
    }
  }
  if (seq != expected) {
    return Refuse(WireError::kSequenceGap, seq,
                  std::string(seq < expected ? "duplicate" : "gap") + ": expected seq " +
                      std::to_string(expected));
  }
  if (epoch < rules.epoch) {
    return Refuse(WireError::kStaleEpoch, seq,
                  "epoch " + std::to_string(epoch) + " is older than the source's epoch " +
                      std::to_string(rules.epoch));
  }
  if (epoch > rules.epoch) {
    return Refuse(WireError::kProtocol, seq,
                  "epoch " + std::to_string(epoch) + " is newer than the session's epoch " +
                      std::to_string(rules.epoch));
  }
  if (!decoded.ok()) {
    if (std::optional<std::string> escape = PathViolation(rec, static_cast<RecordType>(type))) {
      return Refuse(WireError::kEscape, seq, "path would leave the image: " + *escape);
    }
    return Refuse(WireError::kProtocol, seq, decoded.status().message());
  }
  if (const auto* mknod = std::get_if<common::MknodOp>(&decoded->op)) {
    const uint32_t fmt = mknod->mode & S_IFMT;
    if (!rules.allow_devices && (fmt == S_IFCHR || fmt == S_IFBLK)) {
      return Refuse(WireError::kDeviceRefused, seq,
                    "device node not allowed for this source (allow_devices is off)");
    }
  }
  *length = len;
  return std::nullopt;
}

}  // namespace mirror::d
