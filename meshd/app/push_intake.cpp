#include "meshd/app/push_intake.hpp"

#include <algorithm>
#include <cstring>

namespace meshd::app {

std::size_t PushIntake::IdHash::operator()(const core::EventId& id) const noexcept {
  std::size_t h;  // the id is a BLAKE2b hash: any 8 of its bytes are uniform
  std::memcpy(&h, id.data(), sizeof h);
  return h;
}

PushIntake::Offer PushIntake::offer(std::string_view signer, Item item) {
  if (waiting_.contains(item.id)) return Offer::already_queued;
  if (size_ >= total_max_) return Offer::full;
  auto it = queues_.find(std::string(signer));
  if (it == queues_.end()) {
    it = queues_.emplace(std::string(signer), std::deque<Item>{}).first;
    turns_.push_back(it->first);
  } else if (it->second.size() >= per_signer_max_) {
    return Offer::full;
  }
  waiting_.insert(item.id);
  it->second.push_back(std::move(item));
  ++size_;
  return Offer::queued;
}

std::optional<PushIntake::Item> PushIntake::next() {
  if (turns_.empty()) return std::nullopt;
  std::string signer = std::move(turns_.front());
  turns_.pop_front();
  auto it = queues_.find(signer);
  Item item = std::move(it->second.front());
  it->second.pop_front();
  waiting_.erase(item.id);
  --size_;
  if (it->second.empty())
    queues_.erase(it);
  else
    turns_.push_back(std::move(signer));  // its next event waits for every other signer's
  return item;
}

std::optional<PushIntake::Item> PushIntake::take_oldest(std::string_view signer) {
  auto it = queues_.find(std::string(signer));
  if (it == queues_.end()) return std::nullopt;
  Item item = std::move(it->second.front());
  it->second.pop_front();
  waiting_.erase(item.id);
  --size_;
  if (it->second.empty()) {
    turns_.erase(std::find(turns_.begin(), turns_.end(), it->first));
    queues_.erase(it);
  }
  return item;
}

}  // namespace meshd::app
