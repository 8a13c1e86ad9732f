"""rosbag2 files without `ros2 bag`: the rosbags library writes and reads them (mcap or sqlite3), with the message
definitions of this package's types stored so other tools can decode them."""
