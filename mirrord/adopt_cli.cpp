#include "mirrord/adopt_cli.h"

#include <filesystem>
#include <iostream>

#include "common/config_units.h"
#include "mirrord/cli_args.h"
#include "mirrord/config.h"

#ifdef MIRRORD_HAVE_CONTROL
#include "control/control_client.h"
#endif

namespace mirror::d {

using common::Result;
using common::Status;

namespace {

std::string NextSteps(const AdoptRequest& req, const AdoptResult& r) {
  std::string out = "next:\n";
  out += "  1. start mirrord here (mirrord serve ... --state-dir " + req.state_dir + ")\n";
  out += "  2. on the promoted side, mount its mirrorfs with -o mirror=THIS_HOST:PORT,source_id=" +
         req.source_id + "\n     (its resync sends only the differences into " + r.image + ")\n";
  out +=
      "  3. to switch roles back later: at a clean point, stop the promoted side's clients,\n"
      "     unmount its mirrorfs, `mirrord promote " +
      req.source_id + "` here, mount mirrorfs over " + r.image + "\n";
  return out;
}

}  // namespace

Result<AdoptRequest> ParseAdoptArgs(const std::vector<std::string>& args, bool* json, bool* help) {
  AdoptRequest req;
  req.state_dir = kDefaultStateDir;
  *json = false;
  *help = false;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string v;
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      *help = true;
      return req;
    }
    if (a == "--json") {
      *json = true;
      continue;
    }
    if (TakeValue(args, &i, "--state-dir", &v)) {
      if (v.empty()) return Status::InvalidArgument("--state-dir is empty");
      req.state_dir = v;
      continue;
    }
    if (TakeValue(args, &i, "--journal", &v)) {
      if (v.empty()) return Status::InvalidArgument("--journal is empty");
      req.journal = v;
      continue;
    }
    if (TakeValue(args, &i, "--after-seq", &v)) {
      Result<uint64_t> n = common::ParseUint(v);
      if (!n.ok())
        return Status::InvalidArgument("--after-seq takes a sequence number, not '" + v + "'");
      req.after_seq = *n;
      continue;
    }
    if (!a.empty() && a[0] == '-') {
      return Status::InvalidArgument("unknown or incomplete option '" + a + "'");
    }
    positional.push_back(a);
  }
  if (positional.empty()) return Status::InvalidArgument("missing SOURCE");
  if (positional.size() > 2) {
    return Status::InvalidArgument("unexpected argument '" + positional[2] + "'");
  }
  req.source_id = positional[0];
  if (!ValidSourceId(req.source_id)) {
    return Status::InvalidArgument("'" + req.source_id + "' is not a valid source id");
  }
  if (positional.size() == 2) {
    if (positional[1].empty()) return Status::InvalidArgument("DIR is empty");
    req.dir = positional[1];
  }
  if (req.after_seq && !req.journal) {
    return Status::InvalidArgument("--after-seq needs --journal");
  }
  return req;
}

std::string FormatAdoptText(const AdoptRequest& req, const AdoptResult& r) {
  std::string out = "adopted source '" + req.source_id + "': store " + r.store + ", image " +
                    r.image + ", epoch " + std::to_string(r.epoch) + ", not promoted\n";
  if (r.report) {
    out += "report: " + *r.report + " (" + std::to_string(r.records) + " records" +
           (r.exact ? "" : ", not exact") + "; " + std::to_string(r.saved_files) +
           " files saved)\n";
  } else {
    out += "report: none (no --journal: nothing was saved)\n";
  }
  if (r.journal_moved_to) out += "journal moved to " + *r.journal_moved_to + "\n";
  for (const std::string& side : r.side_files_moved) out += "  and " + side + "\n";
  if (r.log_moved_to) {
    out += "unapplied log moved to " + *r.log_moved_to + " (records a forced promote left)\n";
  }
  return out + NextSteps(req, r);
}

nlohmann::json AdoptJson(const AdoptRequest& req, const AdoptResult& r) {
  auto or_null = [](const std::optional<std::string>& v) -> nlohmann::json {
    if (v) return *v;
    return nullptr;
  };
  return {{"source", req.source_id},
          {"store", r.store},
          {"image", r.image},
          {"epoch", r.epoch},
          {"report", or_null(r.report)},
          {"records", r.records},
          {"saved_files", r.saved_files},
          {"exact", r.exact},
          {"journal_moved_to", or_null(r.journal_moved_to)},
          {"saved_dir", or_null(r.saved_dir)},
          {"log_moved_to", or_null(r.log_moved_to)},
          {"warnings", r.warnings}};
}

nlohmann::json AdoptReplyJson(const AdoptRequest& request, const AdoptResult& result) {
  const char* outcome = result.outcome == AdoptOutcome::kDone      ? "done"
                        : result.outcome == AdoptOutcome::kRefused ? "refused"
                                                                   : "failed";
  return {{"ok", true},
          {"outcome", outcome},
          {"error", result.error},
          {"result", AdoptJson(request, result)},
          {"text", result.outcome == AdoptOutcome::kDone ? FormatAdoptText(request, result) : ""}};
}

nlohmann::json AdoptRequestJson(const AdoptRequest& request) {
  nlohmann::json j = {{"cmd", "adopt"}, {"source", request.source_id}};
  if (request.dir) j["dir"] = *request.dir;
  if (request.journal) j["journal"] = *request.journal;
  if (request.after_seq) j["after_seq"] = *request.after_seq;
  return j;
}

AdoptRequest AdoptRequestFromJson(const nlohmann::json& j, const std::string& state_dir) {
  AdoptRequest r;
  r.source_id = j.value("source", "");
  r.state_dir = state_dir;
  if (j.contains("dir") && j["dir"].is_string()) r.dir = j["dir"].get<std::string>();
  if (j.contains("journal") && j["journal"].is_string()) {
    r.journal = j["journal"].get<std::string>();
  }
  if (j.contains("after_seq") && j["after_seq"].is_number_unsigned()) {
    r.after_seq = j["after_seq"].get<uint64_t>();
  }
  return r;
}

namespace {

// A promote-sized wait: the daemon copies the saved files before it answers.
constexpr auto kAdoptTimeout = std::chrono::hours(6);

// Asks the running mirrord; nullopt when none answers on the state dir's socket.
std::optional<nlohmann::json> AdoptThroughDaemon(AdoptRequest request, std::string* error) {
#ifdef MIRRORD_HAVE_CONTROL
  // The daemon runs elsewhere in the file tree: give it absolute paths.
  std::error_code ec;
  if (request.dir) request.dir = std::filesystem::absolute(*request.dir, ec).string();
  if (request.journal) request.journal = std::filesystem::absolute(*request.journal, ec).string();
  auto reply = control::Request(request.state_dir + "/" + kControlSocketName,
                                AdoptRequestJson(request), kAdoptTimeout);
  if (!reply.ok()) {
    if (reply.status().code() == common::Code::kUnavailable) return std::nullopt;
    *error = reply.status().ToString();
    return nlohmann::json{{"ok", false}, {"error", *error}};
  }
  return *reply;
#else
  (void)request;
  (void)error;
  return std::nullopt;
#endif
}

}  // namespace

int AdoptCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  bool json = false, help = false;
  Result<AdoptRequest> req = ParseAdoptArgs(args, &json, &help);
  if (help) {
    out << "usage:\n" << kAdoptUsage << "\n" << kAdoptHelp;
    return kAdoptDone;
  }
  if (!req.ok()) {
    err << "mirrord: adopt: " << req.status().message() << "\nusage:\n" << kAdoptUsage;
    return kAdoptUsageError;
  }
  std::string error;
  std::optional<nlohmann::json> reply = AdoptThroughDaemon(*req, &error);
  if (!reply) reply = AdoptReplyJson(*req, Adopt(*req));
  if (!reply->value("ok", false)) {
    err << "mirrord: adopt: " << reply->value("error", "the daemon refused the request") << "\n";
    return kAdoptFailed;
  }
  const std::string outcome = reply->value("outcome", "failed");
  if (outcome != "done") {
    err << "mirrord: adopt: " << reply->value("error", "") << "\n";
    return outcome == "refused" ? kAdoptRefused : kAdoptFailed;
  }
  const nlohmann::json& result = (*reply)["result"];
  for (const auto& w : result.value("warnings", nlohmann::json::array())) {
    err << "mirrord: adopt: warning: " << w.get<std::string>() << "\n";
  }
  if (json) {
    out << result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    out << reply->value("text", "");
  }
  return kAdoptDone;
}

int AdoptCommand(const std::vector<std::string>& args) {
  return AdoptCommand(args, std::cout, std::cerr);
}

}  // namespace mirror::d
