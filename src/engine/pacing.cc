#include "engine/pacing.h"

namespace herald {

TimePoint MinimumWait::NextStart(TimePoint now) const {
  if (!last_ || wait_.count() <= 0) return now;
  TimePoint earliest = *last_ + wait_;
  return earliest > now ? earliest : now;
}

TaskPacing::Verdict TaskPacing::Next(TimePoint now) const {
  if (limit_ > 0 && started_ >= limit_) return Verdict::kDone;
  if (block_size_ > 0 && in_block_ >= block_size_) return Verdict::kBlockUnfinished;
  if (now < resume_at_) return Verdict::kWait;
  return Verdict::kStart;
}

void TaskPacing::Started() {
  ++started_;
  ++on_their_way_;
  if (block_size_ > 0) ++in_block_;
}

void TaskPacing::Finished(TimePoint at) {
  if (on_their_way_ > 0) --on_their_way_;
  // Every earlier block was done before this one began, so none on their way means this block.
  if (block_size_ > 0 && in_block_ >= block_size_ && on_their_way_ == 0) {
    in_block_ = 0;
    resume_at_ = at + block_pause_;
  }
}

void TaskPacing::Unstarted() {
  if (started_ > 0) --started_;
  if (on_their_way_ > 0) --on_their_way_;
  if (in_block_ > 0) --in_block_;
}

}  // namespace herald
