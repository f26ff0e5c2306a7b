// FakeResolver: a Resolver answering from a table the test fills, counting the queries it gets.
// A name with no entry for the type asked is NODATA when the name has entries for other types and
// NXDOMAIN otherwise, as a real zone would answer. Every query completes after one round of the
// event loop, so concurrent queries overlap as they do against a real server.
// Threading: the coroutines of one io_context.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "dns/resolver.h"

namespace herald {

class FakeResolver final : public dns::Resolver {
 public:
  void Set(const std::string& name, dns::RecordType type, dns::Answer answer) {
    answers_[{Lower(name), type}] = std::move(answer);
  }
  void SetMx(const std::string& name, std::vector<dns::MxRecord> records, Duration ttl = std::chrono::seconds(300)) {
    dns::Answer answer = Ok(ttl);
    answer.mx = std::move(records);
    Set(name, dns::RecordType::kMx, std::move(answer));
  }
  void SetAddresses(const std::string& name, dns::RecordType type, std::vector<std::string> addresses,
                    Duration ttl = std::chrono::seconds(300)) {
    dns::Answer answer = Ok(ttl);
    answer.addresses = std::move(addresses);
    Set(name, type, std::move(answer));
  }
  void SetStatus(const std::string& name, dns::RecordType type, dns::AnswerStatus status,
                 Duration ttl = Duration(0)) {
    dns::Answer answer;
    answer.status = status;
    answer.ttl = ttl;
    if (status == dns::AnswerStatus::kServFail) answer.reason = "the server answered SERVFAIL";
    Set(name, type, std::move(answer));
  }

  asio::awaitable<dns::Answer> Query(std::string name, dns::RecordType type) override {
    queries_.push_back(Describe(name, type));
    auto executor = co_await asio::this_coro::executor;
    co_await asio::post(executor, asio::use_awaitable);
    co_return Lookup(Lower(name), type);
  }

  // Every query so far, "MX example.com", in order.
  const std::vector<std::string>& queries() const { return queries_; }

 private:
  static dns::Answer Ok(Duration ttl) {
    dns::Answer answer;
    answer.status = dns::AnswerStatus::kOk;
    answer.ttl = ttl;
    return answer;
  }

  static std::string Describe(const std::string& name, dns::RecordType type) {
    return std::string(dns::RecordTypeName(type)) + " " + name;
  }

  static std::string Lower(std::string text) {
    for (char& c : text) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return text;
  }

  dns::Answer Lookup(const std::string& name, dns::RecordType type) const {
    if (auto found = answers_.find({name, type}); found != answers_.end()) return found->second;
    dns::Answer answer;
    answer.status = dns::AnswerStatus::kNxDomain;
    for (const auto& [key, value] : answers_) {
      if (key.first == name) answer.status = dns::AnswerStatus::kNoData;
    }
    return answer;
  }

  std::map<std::pair<std::string, dns::RecordType>, dns::Answer> answers_;
  std::vector<std::string> queries_;
};

}  // namespace herald
