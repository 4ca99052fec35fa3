{
  "targets": [
    { "target_name": "huge_pages", "sources": ["native/huge_pages.c"] }
  ]
}
