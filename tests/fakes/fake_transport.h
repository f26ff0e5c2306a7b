// FakeTransport: a Transport that records every message it is given and answers as a test
// scripts it — per recipient address, per connect — so engine behaviour (retries, failures,
// account scope, connection limits) is tested without a server. Given a clock, it stamps each
// transaction with the time it began (MAIL FROM), so pacing and sending limits are checked
// against what left when; given a sleeper too, connects and sends take `connect_time` and
// `send_time` on that clock (virtual time, see FakeSleeper). Optionally each send takes
// `send_delay` of real time on the event loop, to make sends overlap. Single-threaded.
#pragma once

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "core/clock.h"
#include "engine/sleeper.h"
#include "engine/transport_factory.h"
#include "transport/transport.h"

namespace herald {

struct SentMessage {
  Envelope envelope;
  std::string data;
  TimePoint at{};  // when the transaction began, on the transport's clock (epoch without one)
  std::vector<Outcome> outcomes;  // one per envelope recipient
};

class FakeTransport final : public Transport {
 public:
  // What the fake answers for a recipient address (delivered unless scripted).
  std::map<std::string, Outcome> outcome_for;
  // Answers given to a recipient address in turn, before outcome_for applies (a temporary
  // failure that clears, an account failure in the middle of a run).
  std::map<std::string, std::vector<Outcome>> next_outcomes_for;
  // When set, every Connect() fails with this outcome.
  std::optional<Outcome> connect_failure;
  // Connect() to a destination fails with this outcome (direct delivery to an unreachable domain).
  std::map<std::string, Outcome> connect_failure_for;
  // Destination() is the recipient's domain, as for direct delivery; otherwise one for all.
  bool destination_is_domain = false;
  std::chrono::milliseconds send_delay{0};
  const Clock* clock = nullptr;
  Sleeper* sleeper = nullptr;  // with clock: connects and sends take this long on it
  Duration connect_time{0};
  Duration send_time{0};
  // With a clock: the "server" drops a connection left idle longer than this, as servers do
  // (Postfix's smtpd_timeout); the next Send on it fails as on a dropped connection.
  Duration idle_timeout{0};

  std::vector<SentMessage> sent;          // transactions with at least one recipient delivered
  std::vector<SentMessage> transactions;  // every transaction, whatever its outcome
  int connects = 0;
  std::map<std::string, int> connects_to;  // by destination
  int dropped_idle = 0;  // sends that found their connection dropped for idling
  int open_connections = 0;
  int max_open_connections = 0;
  std::map<std::string, int> open_to;      // by destination
  std::map<std::string, int> max_open_to;  // by destination
  int sends_in_progress = 0;
  int max_sends_in_progress = 0;

  std::string Destination(const Address& recipient) const override {
    return destination_is_domain ? recipient.domain : std::string();
  }

  asio::awaitable<ConnectResult> Connect(std::string destination) override {
    ++connects;
    ++connects_to[destination];
    co_await Take(connect_time);
    if (connect_failure) co_return ConnectResult{nullptr, *connect_failure};
    auto failure = connect_failure_for.find(destination);
    if (failure != connect_failure_for.end()) co_return ConnectResult{nullptr, failure->second};
    ++open_connections;
    max_open_connections = std::max(max_open_connections, open_connections);
    max_open_to[destination] = std::max(max_open_to[destination], ++open_to[destination]);
    co_return ConnectResult{std::make_unique<FakeConnection>(*this, destination), {}};
  }

  static Outcome Reply(Disposition disposition, Scope scope, int code, std::string enhanced, std::string text) {
    Outcome outcome;
    outcome.disposition = disposition;
    outcome.scope = scope;
    outcome.stage = scope == Scope::kRecipient ? Stage::kRcptTo : Stage::kDataEnd;
    outcome.reply_code = code;
    outcome.enhanced_status = std::move(enhanced);
    outcome.text = std::move(text);
    return outcome;
  }

 private:
  Outcome OutcomeFor(const std::string& recipient) {
    auto next = next_outcomes_for.find(recipient);
    if (next != next_outcomes_for.end() && !next->second.empty()) {
      Outcome outcome = next->second.front();
      next->second.erase(next->second.begin());
      return outcome;
    }
    auto scripted = outcome_for.find(recipient);
    return scripted == outcome_for.end() ? Delivered() : scripted->second;
  }

  static Outcome Delivered() {
    Outcome outcome;
    outcome.reply_code = 250;
    outcome.enhanced_status = "2.0.0";
    outcome.text = "ok";
    return outcome;
  }

  TimePoint Now() const { return clock != nullptr ? clock->Now() : TimePoint{}; }

  asio::awaitable<void> Take(Duration time) {
    if (sleeper == nullptr || clock == nullptr || time.count() <= 0) co_return;
    co_await sleeper->SleepUntil(clock->Now() + time, [] { return false; });
  }

  class FakeConnection final : public Connection {
   public:
    FakeConnection(FakeTransport& owner, std::string destination)
        : owner_(owner), destination_(std::move(destination)), last_used_(owner.Now()) {}
    ~FakeConnection() override { Closed(); }

    asio::awaitable<std::vector<Outcome>> Send(Envelope envelope,
                                               std::shared_ptr<const MessageData> message) override {
      TimePoint began = owner_.Now();
      if (owner_.idle_timeout.count() > 0 && began - last_used_ > owner_.idle_timeout) {
        ++owner_.dropped_idle;
        co_await Close();
        co_return std::vector<Outcome>(envelope.recipients.size(), Dropped());
      }
      ++owner_.sends_in_progress;
      owner_.max_sends_in_progress = std::max(owner_.max_sends_in_progress, owner_.sends_in_progress);
      co_await owner_.Take(owner_.send_time);
      if (owner_.send_delay.count() > 0) {
        asio::steady_timer timer(co_await asio::this_coro::executor, owner_.send_delay);
        co_await timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
      }
      --owner_.sends_in_progress;
      std::vector<Outcome> outcomes;
      bool any_delivered = false;
      for (const std::string& recipient : envelope.recipients) {
        outcomes.push_back(owner_.OutcomeFor(recipient));
        any_delivered |= outcomes.back().delivered();
      }
      SentMessage transaction{envelope, message->ToString(), began, outcomes};
      if (any_delivered) owner_.sent.push_back(transaction);
      owner_.transactions.push_back(std::move(transaction));
      last_used_ = owner_.Now();
      co_return outcomes;
    }

    bool reusable() const override { return !closed_; }

    asio::awaitable<void> Close() override {
      Closed();
      co_return;
    }

   private:
    // What a session reports when the server has closed the connection (smtp::Session).
    static Outcome Dropped() {
      Outcome outcome = Reply(Disposition::kTemporary, Scope::kMessage, 0, "", "connection closed by the server");
      outcome.stage = Stage::kMailFrom;
      return outcome;
    }

    void Closed() {
      if (closed_) return;
      --owner_.open_connections;
      --owner_.open_to[destination_];
      closed_ = true;
    }

    FakeTransport& owner_;
    std::string destination_;
    TimePoint last_used_;
    bool closed_ = false;
  };
};

// Hands out one FakeTransport per account name (created on first use, kept for inspection),
// each given the factory's clock and sleeper.
class FakeTransportFactory final : public TransportFactory {
 public:
  explicit FakeTransportFactory(const Clock* clock = nullptr, Sleeper* sleeper = nullptr)
      : clock_(clock), sleeper_(sleeper) {}

  Result<std::unique_ptr<Transport>> Create(const AccountConfig& account, Transcript = {}) override {
    return std::unique_ptr<Transport>(new ForwardingTransport(For(account.name)));
  }

  // The fake behind `account`; scripting it before the run shapes what the run sees.
  FakeTransport& For(const std::string& account) {
    std::unique_ptr<FakeTransport>& fake = by_account_[account];
    if (fake == nullptr) {
      fake = std::make_unique<FakeTransport>();
      fake->clock = clock_;
      fake->sleeper = sleeper_;
    }
    return *fake;
  }

 private:
  // The engine owns the Transport it gets; the fake stays with the factory for the test to read.
  class ForwardingTransport final : public Transport {
   public:
    explicit ForwardingTransport(FakeTransport& fake) : fake_(fake) {}
    std::string Destination(const Address& recipient) const override { return fake_.Destination(recipient); }
    asio::awaitable<ConnectResult> Connect(std::string destination) override {
      return fake_.Connect(std::move(destination));
    }

   private:
    FakeTransport& fake_;
  };

  const Clock* clock_;
  Sleeper* sleeper_;
  std::map<std::string, std::unique_ptr<FakeTransport>> by_account_;
};

}  // namespace herald
