// The daemon's recent event log (`meshctl events`, /ui): the newest `max_lines` JSON lines.
//
// Lines are appended into 64 KiB chunks instead of one heap string each. A block change writes
// one line, so a burst of 100k claims writes 100k of them, and the 2,000 that stay were
// allocated last, each between the burst's freed frames and buffers: as separate strings they
// kept a few MB of otherwise free heap pages resident after the burst (malloc_trim cannot give
// back a page that holds one live string). In chunks they occupy ~their own size.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::app {

class EventLog {
 public:
  explicit EventLog(std::size_t max_lines) : max_lines_(max_lines) {}

  void push(std::string_view line) {
    if (chunks_.empty() ||
        chunks_.back().text.size() + line.size() > chunks_.back().text.capacity())
      add_chunk(line.size());
    Chunk& c = chunks_.back();
    c.text.append(line);
    c.ends.push_back(static_cast<std::uint32_t>(c.text.size()));
    ++size_;
    while (size_ > max_lines_) drop_oldest();
  }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Line i, 0 = the oldest held. Valid until the next push().
  std::string_view operator[](std::size_t i) const {
    i += first_;
    for (const Chunk& c : chunks_) {
      if (i < c.ends.size()) {
        const std::uint32_t begin = i == 0 ? 0 : c.ends[i - 1];
        return std::string_view(c.text).substr(begin, c.ends[i] - begin);
      }
      i -= c.ends.size();
    }
    return {};
  }

 private:
  static constexpr std::size_t kChunkBytes = 64 * 1024;
  struct Chunk {
    std::string text;                 // the chunk's lines, back to back
    std::vector<std::uint32_t> ends;  // end offset of each line in `text`
  };
  void add_chunk(std::size_t first_line) {
    Chunk& c = chunks_.emplace_back();
    c.text.reserve(std::max(kChunkBytes, first_line));
    c.ends.reserve(256);
  }
  void drop_oldest() {
    --size_;
    if (++first_ == chunks_.front().ends.size()) {
      chunks_.pop_front();
      first_ = 0;
    }
  }

  std::size_t max_lines_;
  std::deque<Chunk> chunks_;
  std::size_t first_ = 0;  // lines of chunks_.front() already dropped
  std::size_t size_ = 0;
};

}  // namespace meshd::app
