// The client side of the control socket (protocol: docs/control.md): what the CLIs
// (`mirrorfs status MNT`, `mirrord promote`, ...) use to ask a daemon.
//
// Thread-safety: Request is stateless and may be called from any thread.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace mirror::control {

// Connects to `path`, sends `request` as one line and returns the reply object, whatever
// its "ok" says (the caller reads "ok" and "error"). The whole exchange, connecting
// included, is bounded by `timeout`. Errors:
//   Unavailable       nothing listens at `path` (ENOENT, ECONNREFUSED: "no daemon at PATH"),
//                     or the server closed without replying;
//   PermissionDenied  the socket's mode refuses us (EACCES: not root);
//   DeadlineExceeded  no complete reply within `timeout`;
//   Corruption        the reply is not one JSON object (or larger than 1 MiB);
//   InvalidArgument   `path` does not fit a socket address; IOError otherwise.
common::Result<nlohmann::json> Request(const std::string& path, const nlohmann::json& request,
                                       std::chrono::milliseconds timeout);

}  // namespace mirror::control
