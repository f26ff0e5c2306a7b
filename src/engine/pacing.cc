#include "engine/pacing.h"

namespace herald {

TimePoint MinimumWait::Reserve(TimePoint now) {
  TimePoint slot = reserved_ && *reserved_ + wait_ > now ? *reserved_ + wait_ : now;
  reserved_ = slot;
  return slot;
}

TimePoint MinimumWait::NextLeave(TimePoint now) const {
  if (!left_ || *left_ + wait_ <= now) return now;
  return *left_ + wait_;
}

void MinimumWait::Left(TimePoint at) {
  left_ = at;
  if (!reserved_ || *reserved_ < at) reserved_ = at;
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
