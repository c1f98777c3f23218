// Status and Result<T>: how errors cross module boundaries in mirrorfs.
//
// A Status is a code, an optional errno and a message. OK carries no message and costs
// no allocation. Factories name the kind of failure (Corruption, IOError, ...), so a
// caller can branch on the kind and print the message. Nothing in common/ throws.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace mirror::common {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // the caller asked for something malformed
  kCorruption,       // bytes on disk or on the wire fail validation
  kIOError,          // a system call failed
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,  // refused by policy (escape attempt, device node not allowed, ...)
  kFull,              // no space left in a bounded container
  kAborted,           // the operation was interrupted (shutdown)
  kMismatch,          // a file belongs to another source, volume or version
  kUnavailable,       // the peer (a daemon, a socket) is not there or not answering
  kDeadlineExceeded,  // a bounded wait ran out
};

std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return {Code::kInvalidArgument, 0, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {Code::kCorruption, 0, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {Code::kNotFound, 0, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) { return {Code::kAlreadyExists, 0, std::move(msg)}; }
  static Status PermissionDenied(std::string msg) { return {Code::kPermissionDenied, 0, std::move(msg)}; }
  static Status Full(std::string msg) { return {Code::kFull, 0, std::move(msg)}; }
  static Status Aborted(std::string msg) { return {Code::kAborted, 0, std::move(msg)}; }
  static Status Mismatch(std::string msg) { return {Code::kMismatch, 0, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, 0, std::move(msg)}; }
  static Status DeadlineExceeded(std::string msg) { return {Code::kDeadlineExceeded, 0, std::move(msg)}; }
  // An I/O error from a system call: `what` names the call and its object,
  // e.g. IOError("open /var/lib/x", errno). The message ends with strerror(err).
  static Status IOError(std::string what, int err);
  // Like IOError, but keeps the errno while classifying by it: ENOENT becomes
  // kNotFound, EEXIST kAlreadyExists, EACCES/EPERM kPermissionDenied, ENOSPC kFull.
  static Status FromErrno(std::string what, int err);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  int error_number() const { return errno_; }  // 0 unless made from an errno
  const std::string& message() const { return msg_; }
  // "Corruption: <message>", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<prefix>: <message>"; OK stays OK.
  Status Annotate(std::string_view prefix) const;

 private:
  Status(Code code, int err, std::string msg) : code_(code), errno_(err), msg_(std::move(msg)) {}

  Code code_ = Code::kOk;
  int errno_ = 0;
  std::string msg_;
};

// A value or the Status that says why there is none. Never holds an OK status.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<1>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::in_place_index<0>, std::move(status)) {  // NOLINT
    assert(!std::get<0>(v_).ok() && "Result built from an OK status");
  }

  bool ok() const { return v_.index() == 1; }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<0>(v_);
  }
  T& value() & { assert(ok()); return std::get<1>(v_); }
  const T& value() const& { assert(ok()); return std::get<1>(v_); }
  T&& value() && { assert(ok()); return std::get<1>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace mirror::common

#define MIRROR_CONCAT_INNER(a, b) a##b
#define MIRROR_CONCAT(a, b) MIRROR_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` is not OK.
#define MIRROR_RETURN_IF_ERROR(expr)                        \
  do {                                                      \
    ::mirror::common::Status mirror_status_ = (expr);       \
    if (!mirror_status_.ok()) return mirror_status_;        \
  } while (0)

// `lhs = value of expr`, or returns its Status. lhs may declare a variable.
#define MIRROR_ASSIGN_OR_RETURN(lhs, expr) \
  MIRROR_ASSIGN_OR_RETURN_IMPL(MIRROR_CONCAT(mirror_result_, __LINE__), lhs, expr)
#define MIRROR_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
