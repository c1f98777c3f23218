#include "mirrord/server.h"

#include <csignal>

#include "common/secret_file.h"
#include "mirrord/adopt_cli.h"
#include "mirrord/log.h"
#include "mirrord/promote_cli.h"

namespace mirror::d {

namespace asio = boost::asio;
using common::Status;

Server::Server(MirrordConfig config)
    : config_(std::move(config)),
      strand_(asio::make_strand(io_)),
      blocking_(4),
      registry_(config_),
      signals_(strand_, SIGINT, SIGTERM),
      grace_(strand_) {
  for (uint32_t i = 0; i < config_.io_threads; ++i) {
    conn_io_.push_back(std::make_unique<asio::io_context>(1));
    conn_work_.push_back(asio::make_work_guard(*conn_io_.back()));
  }
}

Server::~Server() {
  io_.stop();
  for (auto& c : conn_io_) c->stop();
  blocking_.join();
  registry_.CloseAll();
}

Status Server::Start() {
  MIRROR_RETURN_IF_ERROR(registry_.OpenAll());
  for (const std::string& addr : config_.listen) {
    std::string host;
    uint16_t port = 0;
    MIRROR_RETURN_IF_ERROR(common::SplitHostPort(addr, &host, &port));
    boost::system::error_code ec;
    asio::ip::address ip = asio::ip::make_address(host, ec);
    if (ec) return Status::InvalidArgument("listen address '" + addr + "': " + ec.message());
    auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(strand_);
    asio::ip::tcp::endpoint ep(ip, port);
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status::IOError("listen on " + addr + ": " + ec.message(), ec.value());
    auto bound = acceptor->local_endpoint(ec);
    Log(LogLevel::kNotice,
        "listening on " + bound.address().to_string() + ":" + std::to_string(bound.port()));
    acceptors_.push_back(std::move(acceptor));
  }
#ifdef MIRRORD_HAVE_CONTROL
  const std::string sock = config_.state_dir + "/" + kControlSocketName;
  auto control = control::ControlServer::Start(
      sock, [this](const nlohmann::json& request) { return Control(request); });
  if (!control.ok()) return control.status().Annotate("control socket " + sock);
  control_ = std::move(control).value();
#endif
  return Status::Ok();
}

std::vector<asio::ip::tcp::endpoint> Server::endpoints() const {
  std::vector<asio::ip::tcp::endpoint> out;
  for (const auto& a : acceptors_) {
    boost::system::error_code ec;
    out.push_back(a->local_endpoint(ec));
  }
  return out;
}

nlohmann::json Server::Control(const nlohmann::json& request) {
  const std::string cmd = request.value("cmd", "");
  if (cmd == "status") {
    nlohmann::json reply = registry_.StatusJson();
    reply["ok"] = true;
    reply["version"] = MIRRORD_VERSION;
    return reply;
  }
  if (cmd == "promote") return ControlPromote(request);
  if (cmd == "adopt") return ControlAdopt(request);
  return {{"ok", false}, {"error", "unknown command"}};
}

nlohmann::json Server::ControlPromote(const nlohmann::json& request) {
  const std::string source = request.value("source", "");
  const bool force = request.value("force", false);
  common::Result<SourceStore*> store = registry_.Existing(source);
  if (!store.ok()) return PromoteOutcomeJson(source, "", force, store.status());
  common::Result<PromoteResult> result = (*store)->Promote(force);
  if (result.ok() && result->refused.empty()) {
    if (!result->already) {
      LogSource(LogLevel::kNotice, source,
                "promoted at epoch " + std::to_string(result->epoch) + ": the image holds seq " +
                    std::to_string(result->promoted_seq) + (force ? " (forced)" : ""));
    }
    RefuseSource(source, {common::WireError::kStaleEpoch, (*store)->FencedMessage()});
  }
  return PromoteOutcomeJson(source, (*store)->dir() + "/image", force, result);
}

nlohmann::json Server::ControlAdopt(const nlohmann::json& request) {
  AdoptRequest req = AdoptRequestFromJson(request, config_.state_dir);
  if (!ValidSourceId(req.source_id)) {
    return {{"ok", false}, {"error", "'" + req.source_id + "' is not a valid source id"}};
  }
  AdoptResult result;
  Status reopened = registry_.WithStoreClosed(req.source_id, [&] { result = Adopt(req); });
  if (result.outcome == AdoptOutcome::kDone) {
    LogSource(LogLevel::kNotice, req.source_id,
              "adopted (epoch " + std::to_string(result.epoch) + ", " +
                  std::to_string(result.records) + " records listed in " +
                  result.report.value_or("no report") + ")");
    if (!reopened.ok()) {
      result.warnings.push_back("mirrord could not open the adopted store: " + reopened.ToString());
    }
  }
  return AdoptReplyJson(req, result);
}

std::vector<std::shared_ptr<Connection>> Server::LiveConnections() {
  std::vector<std::shared_ptr<Connection>> live;
  std::lock_guard<std::mutex> lock(conns_mu_);
  for (auto& w : conns_) {
    if (auto c = w.lock()) live.push_back(std::move(c));
  }
  return live;
}

void Server::RefuseSource(const std::string& source_id, const Refusal& refusal) {
  for (auto& c : LiveConnections()) c->RefuseIfSource(source_id, refusal);
}

void Server::Accept(asio::ip::tcp::acceptor& acceptor) {
  asio::io_context& conn_io = *conn_io_[next_conn_io_++ % conn_io_.size()];
  acceptor.async_accept(
      asio::make_strand(conn_io),
      [this, &acceptor](const boost::system::error_code& ec, asio::ip::tcp::socket socket) {
        if (ec == asio::error::operation_aborted || stopping_) return;
        if (ec) {
          Log(LogLevel::kWarning, "accept: " + ec.message());
        } else {
          OnAccepted(std::move(socket));
        }
        Accept(acceptor);
      });
}

void Server::OnAccepted(asio::ip::tcp::socket socket) {
  auto conn = std::make_shared<Connection>(std::move(socket), config_, registry_, blocking_);
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    std::erase_if(conns_, [](const std::weak_ptr<Connection>& w) { return w.expired(); });
    if (conns_.size() >= config_.max_connections) {
      // Memory stays bounded: each connection may hold one frame. The socket closes with conn.
      Log(LogLevel::kWarning, "too many connections (limits.max_connections); closing a new one");
      return;
    }
    conns_.push_back(conn);
  }
  conn->Start();
}

void Server::Run() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    Log(LogLevel::kNotice,
        std::string("received ") + (signo == SIGTERM ? "SIGTERM" : "SIGINT") + "; stopping");
    StopOnStrand();
  });
  for (auto& a : acceptors_) Accept(*a);
  std::vector<std::thread> threads;
  for (auto& c : conn_io_) threads.emplace_back([&c] { c->run(); });
  io_.run();  // until WaitDrained: every connection ended, or the grace is over
  conn_work_.clear();
  for (auto& c : conn_io_) c->stop();
  for (auto& t : threads) t.join();
  // Syncs in flight finish; then every store flushes its memory and stops.
  blocking_.join();
  registry_.CloseAll();
  Log(LogLevel::kNotice, "stopped");
}

void Server::Stop() {
  asio::post(strand_, [this] { StopOnStrand(); });
}

void Server::StopOnStrand() {
  if (stopping_.exchange(true)) return;
  boost::system::error_code ec;
  signals_.cancel(ec);
  for (auto& a : acceptors_) a->close(ec);
  for (auto& c : LiveConnections()) c->Shutdown();
  // Connections end by themselves once their ERROR is out; a stuck one cannot hold us.
  WaitDrained(std::chrono::steady_clock::now() + std::chrono::seconds(5));
}

void Server::WaitDrained(std::chrono::steady_clock::time_point deadline) {
  bool drained;
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    std::erase_if(conns_, [](const std::weak_ptr<Connection>& w) { return w.expired(); });
    drained = conns_.empty();
  }
  if (drained || std::chrono::steady_clock::now() >= deadline) {
    io_.stop();
    return;
  }
  grace_.expires_after(std::chrono::milliseconds(20));
  grace_.async_wait([this, deadline](const boost::system::error_code& e) {
    if (!e) WaitDrained(deadline);
  });
}

}  // namespace mirror::d
