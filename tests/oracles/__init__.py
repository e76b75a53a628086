"""Reference implementations from other projects, loaded from their installed code for tests."""
