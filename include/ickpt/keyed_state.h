// A keyed state: a key -> value map of byte strings that ickpt checkpoints by changed entries. It
// records which keys were put or erased since the last capture, so an incremental checkpoint holds
// exactly the changed entries and tombstones for the erased keys, and the capture pause is
// proportional to the number of changes, not to the size of the map. Each key belongs to a key
// group (KeyGroupOf), the unit by which keyed state is split among participants and rescaled.
// TypedKeyedState<K, V> below is a typed view of a KeyedState.
//
// Thread safety: like a standard container. Const methods may run concurrently with each other; any
// mutation (Put, Erase, Clear) must not run concurrently with any other call on the same
// KeyedState: the application synchronises its own access. A checkpoint's capture (and a restore)
// reads and resets the change tracking, so it runs with the application's access stopped, as for
// regions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ickpt/key_group.h"

namespace ickpt {

struct KeyedStateOptions {
  // The number of key groups G, the maximum parallelism: a job can be restored onto at most G
  // participants. Fixed when the state is created; 1 to kMaxKeyGroups. Default 128.
  uint32_t key_groups = 128;
  // Number of entries to reserve room for, to avoid rehashing while the state fills. Default 0.
  size_t expected_entries = 0;
};

class KeyedState {
 public:
  ~KeyedState();
  KeyedState(const KeyedState&) = delete;
  KeyedState& operator=(const KeyedState&) = delete;

  const std::string& name() const { return name_; }
  uint32_t key_groups() const { return key_groups_; }
  // The key groups [first, end) this participant owns: all of them, unless the checkpointer that
  // holds the state is one of several participants (CheckpointerOptions::participant_index).
  uint32_t group_first() const { return group_first_; }
  uint32_t group_end() const { return group_end_; }

  // Sets the value of `key` (inserting it, or replacing its value). The key counts as changed.
  // InvalidArgument, and nothing changes, if the key is longer than kMaxKeySize or the value longer
  // than kMaxValueSize, or if its key group is not one this participant owns. Running out of memory
  // ends the process, as for std containers.
  absl::Status Put(std::string_view key, std::string_view value);
  // The value of `key`, or nullopt if absent. The view stays valid until the next mutation.
  std::optional<std::string_view> Get(std::string_view key) const;
  bool Contains(std::string_view key) const;
  // Removes `key`; true if it was present (then it counts as changed), false otherwise.
  bool Erase(std::string_view key);
  // Erases every key (each counts as changed).
  void Clear();

  // Number of entries.
  size_t size() const;
  bool empty() const { return size() == 0; }
  // Sum of the key and value sizes of all entries (raw bytes, without any overhead).
  uint64_t byte_size() const;

  // Calls fn(key, value) for every entry, in no particular order (the order may change with any
  // mutation). `fn` must not mutate this state.
  void ForEach(absl::FunctionRef<void(std::string_view key, std::string_view value)> fn) const;

 private:
  friend class KeyedStateAccess;
  class Table;
  KeyedState(std::string name, uint32_t key_groups, std::unique_ptr<Table> table);

  std::string name_;
  uint32_t key_groups_;
  uint32_t group_first_;
  uint32_t group_end_;
  std::unique_ptr<Table> table_;
};

// How TypedKeyedState turns a key or value of type T into bytes and back. Provided for trivially
// copyable types (their object representation: native byte order, so a checkpoint moves only
// between machines of the same byte order) and for std::string (the bytes as they are). Specialise
// it for other types:
//   template <> struct KeyedSerde<MyType> {
//     static std::string Serialize(const MyType& value);
//     static absl::StatusOr<MyType> Deserialize(std::string_view bytes);  // DataLoss if invalid
//   };
// A key's bytes must be canonical (equal keys, equal bytes), so trivially copyable key types must
// have unique object representations (no padding bytes, no floating point).
template <typename T, typename Enable = void>
struct KeyedSerde;

template <typename T>
struct KeyedSerde<T, std::enable_if_t<std::is_trivially_copyable_v<T>>> {
  // A view of the object's own bytes: no allocation.
  static std::string_view Serialize(const T& value) {
    return std::string_view(reinterpret_cast<const char*>(&value), sizeof(T));
  }
  static absl::StatusOr<T> Deserialize(std::string_view bytes) {
    if (bytes.size() != sizeof(T)) {
      return absl::DataLossError("stored value has " + std::to_string(bytes.size()) +
                                 " bytes, the type has " + std::to_string(sizeof(T)));
    }
    T value;
    std::memcpy(static_cast<void*>(&value), bytes.data(), sizeof(T));
    return value;
  }
};

template <>
struct KeyedSerde<std::string> {
  static std::string_view Serialize(const std::string& value) { return value; }
  static absl::StatusOr<std::string> Deserialize(std::string_view bytes) {
    return std::string(bytes);
  }
};

// A typed view of a KeyedState: keys of type K, values of type V, converted with KeyedSerde. It
// does not own the state, which must outlive it. Thread safety: that of the KeyedState.
template <typename K, typename V>
class TypedKeyedState {
 public:
  static_assert(!std::is_trivially_copyable_v<K> || std::has_unique_object_representations_v<K>,
                "a trivially copyable key type needs unique object "
                "representations (no padding, "
                "no floating point): specialise KeyedSerde for it");

  explicit TypedKeyedState(KeyedState* state) : state_(state) {}

  KeyedState& state() const { return *state_; }

  // As KeyedState::Put.
  absl::Status Put(const K& key, const V& value) {
    return state_->Put(KeyedSerde<K>::Serialize(key), KeyedSerde<V>::Serialize(value));
  }
  // The value of `key`; NotFound if absent, DataLoss if the stored bytes do not deserialise.
  absl::StatusOr<V> Get(const K& key) const {
    std::optional<std::string_view> bytes = state_->Get(KeyedSerde<K>::Serialize(key));
    if (!bytes.has_value())
      return absl::NotFoundError("key not in keyed state '" + state_->name() + "'");
    return KeyedSerde<V>::Deserialize(*bytes);
  }
  bool Contains(const K& key) const { return state_->Contains(KeyedSerde<K>::Serialize(key)); }
  bool Erase(const K& key) { return state_->Erase(KeyedSerde<K>::Serialize(key)); }
  size_t size() const { return state_->size(); }

  // Calls fn(key, value) for every entry, in no particular order. Stops at the first entry that
  // does not deserialise and returns its DataLoss error; OK otherwise.
  absl::Status ForEach(absl::FunctionRef<void(const K& key, const V& value)> fn) const {
    absl::Status status;
    state_->ForEach([&](std::string_view key_bytes, std::string_view value_bytes) {
      if (!status.ok()) return;
      absl::StatusOr<K> key = KeyedSerde<K>::Deserialize(key_bytes);
      if (!key.ok()) {
        status = key.status();
        return;
      }
      absl::StatusOr<V> value = KeyedSerde<V>::Deserialize(value_bytes);
      if (!value.ok()) {
        status = value.status();
        return;
      }
      fn(*key, *value);
    });
    return status;
  }

 private:
  KeyedState* state_;
};

}  // namespace ickpt
