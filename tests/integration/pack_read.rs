//! Reading packs that git wrote (gc, repack, deltas) and that gitmq wrote.
