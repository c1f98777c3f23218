#include "common/status.h"

#include <cerrno>
#include <cstring>

namespace mirror::common {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: return "Invalid argument";
    case Code::kCorruption: return "Corruption";
    case Code::kIOError: return "I/O error";
    case Code::kNotFound: return "Not found";
    case Code::kAlreadyExists: return "Already exists";
    case Code::kPermissionDenied: return "Permission denied";
    case Code::kFull: return "Full";
    case Code::kAborted: return "Aborted";
    case Code::kMismatch: return "Mismatch";
    case Code::kUnavailable: return "Unavailable";
    case Code::kDeadlineExceeded: return "DeadlineExceeded";
  }
  return "Unknown";
}

Status Status::IOError(std::string what, int err) {
  what += ": ";
  what += std::strerror(err);
  return {Code::kIOError, err, std::move(what)};
}

Status Status::FromErrno(std::string what, int err) {
  Code code = Code::kIOError;
  switch (err) {
    case ENOENT: code = Code::kNotFound; break;
    case EEXIST: code = Code::kAlreadyExists; break;
    case EACCES:
    case EPERM: code = Code::kPermissionDenied; break;
    case ENOSPC: code = Code::kFull; break;
    default: break;
  }
  what += ": ";
  what += std::strerror(err);
  return {code, err, std::move(what)};
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(CodeName(code_));
  s += ": ";
  s += msg_;
  return s;
}

Status Status::Annotate(std::string_view prefix) const {
  if (ok()) return *this;
  std::string msg(prefix);
  msg += ": ";
  msg += msg_;
  return {code_, errno_, std::move(msg)};
}

}  // namespace mirror::common
