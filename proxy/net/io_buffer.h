// A contiguous input buffer whose storage comes from a per-worker pool, so an
// idle connection holds no buffer and a busy one allocates nothing per request.
// Single-threaded: a buffer and its pool belong to one worker.
#pragma once
#include <boost/asio/buffer.hpp>

#include <cstddef>
#include <string_view>
#include <vector>

namespace sluice::proxy {

// Two sizes of block: small ones for what a client sends first (a request
// head usually fits), large ones for bodies and responses. A connection that
// sends half a head and stalls then holds 1 KiB, not 16 (nginx starts its
// header buffer at 1 KiB for the same reason).
class BufferPool {
public:
    static constexpr std::size_t kBlockSize = 16 * 1024;
    static constexpr std::size_t kSmallBlockSize = 1024;
    explicit BufferPool(std::size_t max_free = 1024) : max_free_(max_free) {}
    ~BufferPool();
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;

    char* take() { return take(free_, kBlockSize); }
    void give(char* block) { give(free_, block); }
    char* take_small() { return take(small_free_, kSmallBlockSize); }
    void give_small(char* block) { give(small_free_, block); }
    std::size_t free_blocks() const { return free_.size(); }

private:
    char* take(std::vector<char*>& list, std::size_t size);
    void give(std::vector<char*>& list, char* block);

    std::size_t max_free_;
    std::vector<char*> free_, small_free_;
};

class IoBuffer {
public:
    // `start_small`: the first storage is a small block, moved to a large one
    // when more room is asked for (prepare(min) with more than fits).
    explicit IoBuffer(BufferPool& pool, bool start_small = false) : pool_(&pool), start_small_(start_small) {}
    ~IoBuffer() { drop_storage(); }
    IoBuffer(const IoBuffer&) = delete;
    IoBuffer& operator=(const IoBuffer&) = delete;

    std::string_view data() const { return {data_ + begin_, end_ - begin_}; }
    std::size_t size() const { return end_ - begin_; }
    bool empty() const { return begin_ == end_; }
    std::size_t capacity() const { return cap_; }

    // Free space after the data, at least `min` bytes: compacts or grows as needed.
    boost::asio::mutable_buffer prepare(std::size_t min = 1);
    void commit(std::size_t n) { end_ += n; }
    void consume(std::size_t n);
    // Gives the storage back to the pool when no bytes are buffered.
    void release_if_empty();

private:
    void drop_storage();

    BufferPool* pool_;
    bool start_small_;
    char* data_ = nullptr;
    std::size_t cap_ = 0, begin_ = 0, end_ = 0;
};

}  // namespace sluice::proxy
