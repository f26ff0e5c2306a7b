// MessageData: the bytes of one composed message (RFC 5322, CRLF line ends), kept as a sequence
// of pieces so that task-invariant bytes — the base64 of a 10 MB attachment — are shared by every
// recipient's message instead of copied into each. A MessageData is filled by one thread and then
// read by one thread at a time; the shared pieces are immutable and may be read concurrently.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace herald {

class MessageData {
 public:
  // Forgets every piece; keeps the owned buffer's capacity for the next message.
  void Clear() {
    owned_.clear();
    pieces_.clear();
    shared_.clear();
    size_ = 0;
  }

  // Appends bytes owned by this message (copied).
  void Append(std::string_view bytes) {
    if (bytes.empty()) return;
    if (!pieces_.empty() && pieces_.back().shared == nullptr &&
        pieces_.back().offset + pieces_.back().size == owned_.size()) {
      pieces_.back().size += bytes.size();
    } else {
      pieces_.push_back({nullptr, owned_.size(), bytes.size()});
    }
    owned_.append(bytes);
    size_ += bytes.size();
  }

  // Appends immutable bytes shared with other messages (not copied).
  void AppendShared(std::shared_ptr<const std::string> bytes) {
    if (bytes->empty()) return;
    pieces_.push_back({bytes.get(), 0, bytes->size()});
    size_ += bytes->size();
    shared_.push_back(std::move(bytes));
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Calls f(std::string_view) for each piece in order.
  template <typename F>
  void ForEachPiece(F&& f) const {
    for (const Piece& piece : pieces_) {
      const std::string& base = piece.shared != nullptr ? *piece.shared : owned_;
      f(std::string_view(base).substr(piece.offset, piece.size));
    }
  }

  // One contiguous copy of the message (for tests and small consumers).
  std::string ToString() const {
    std::string out;
    out.reserve(size_);
    ForEachPiece([&](std::string_view piece) { out.append(piece); });
    return out;
  }

 private:
  struct Piece {
    const std::string* shared;  // nullptr: a range of owned_
    std::size_t offset;
    std::size_t size;
  };
  std::string owned_;
  std::vector<Piece> pieces_;
  std::vector<std::shared_ptr<const std::string>> shared_;
  std::size_t size_ = 0;
};

}  // namespace herald
