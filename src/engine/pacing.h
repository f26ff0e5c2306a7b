// Pacing: the waits a user sets, as pure arithmetic on times so that they are tested without
// sleeping (docs/settings.md, per account: "minimum wait between two messages"; per task: "a limit per
// task", "blocks of N messages with a pause between blocks"). The engine asks, waits until the
// answer, and asks again. Not thread-safe: one per account / task, used from the engine's thread.
#pragma once

#include <cstdint>
#include <optional>

#include "core/clock.h"

namespace herald {

// The account's minimum wait between the starts of two messages, over all its connections. A
// message reserves its slot before it waits, without a connection (parallel sends queue one
// behind the other, and no connection idles through the wait); once it has a connection it
// checks again against when the last message really left, since connecting or waiting for a
// free connection may have delayed that one past its slot.
class MinimumWait {
 public:
  explicit MinimumWait(Duration wait) : wait_(wait) {}

  // Reserves the slot of a message asked for at `now`: `wait` after the last slot, or now.
  TimePoint Reserve(TimePoint now);
  // When a message ready at `now` may leave: `wait` after the last one that left, or now.
  TimePoint NextLeave(TimePoint now) const;
  // Records that a message leaves at `at` (at >= NextLeave(at)); later slots follow it.
  void Left(TimePoint at);

 private:
  Duration wait_;
  std::optional<TimePoint> reserved_;  // the last slot handed out
  std::optional<TimePoint> left_;      // when the last message left
};

// The task's limit per run and its blocks: after every `block_size` messages, a pause of
// `block_pause` before the next one starts. The pause runs from when the block's last message
// is done — not from when it was taken, since a message may still wait (an account's minimum
// wait, a free connection, a sending limit) after it is taken, and with parallel sends the
// block's messages may finish in any order.
class TaskPacing {
 public:
  TaskPacing(std::uint64_t limit, std::uint64_t block_size, Duration block_pause)
      : limit_(limit), block_size_(block_size), block_pause_(block_pause) {}

  enum class Verdict {
    kStart,            // a message may start now
    kWait,             // not before resume_at()
    kBlockUnfinished,  // a block is complete and some of its messages are not done: after Finished()
    kDone,             // the task's limit for this run is reached
  };
  Verdict Next(TimePoint now) const;
  TimePoint resume_at() const { return resume_at_; }

  // Records that a message is taken to be sent: it counts towards the limit and the block.
  void Started();
  // A started message is done at `at` (it has its result). After the last one of a complete
  // block, the pause begins.
  void Finished(TimePoint at);
  // A started message that did not go out after all (stopped, or cancelled meanwhile): it does
  // not count towards the limit or the block.
  void Unstarted();

  std::uint64_t started() const { return started_; }

 private:
  std::uint64_t limit_;
  std::uint64_t block_size_;
  Duration block_pause_;
  std::uint64_t started_ = 0;
  std::uint64_t in_block_ = 0;
  std::uint64_t on_their_way_ = 0;  // started, neither finished nor unstarted
  TimePoint resume_at_{};
};

}  // namespace herald
