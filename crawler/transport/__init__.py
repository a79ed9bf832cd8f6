"""A lean keep-alive HTTP/1.1 download handler for loopback targets (speed only).

`keepalive.KeepAliveHandler` is Scrapy's download handler contract over `http11`'s connection; a
remote site keeps Scrapy's own client. Nothing else in the crawler depends on it.
"""
