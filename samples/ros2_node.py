"""A ROS 2 node between a robot and ``ngp serve``: camera images + CameraInfo + TF in, rendered views out.

    # terminal 1: the server (a fresh live NeRF is configured by this node)
    ngp serve
    # terminal 2: a sourced ROS 2 workspace (rclpy and the message packages come with ROS, not with pip)
    source /opt/ros/humble/setup.bash
    python samples/ros2_node.py --ros-args -p image_topics:="['/camera/image_raw']" -p world_frame:=map \\
        -p aabb:="[-2.0, -2.0, -0.5, 2.0, 2.0, 1.5]" -p render_rate:=1.0

Parameters (``--ros-args -p name:=value``):

- ``endpoint`` (``tcp://127.0.0.1:5555``): the server's request endpoint.
- ``image_topics`` (``['/camera/image_raw']``): ``sensor_msgs/Image`` topics, or ``.../compressed`` topics of
  ``sensor_msgs/CompressedImage``; one per camera of a rig. Their CameraInfo topics are ``camera_info`` beside
  them (``camera_info_topics`` to override, same order).
- ``world_frame`` (``map``), ``camera_frame`` (empty: each image's ``header.frame_id``): TF frames of the poses.
- ``aabb`` (six numbers, world metres): the scene box sent with ``configure``; ``aabb_scale`` (1).
- ``render_rate`` (Hz, 0 = off), ``render_width`` / ``render_height``: a view rendered from the first camera's
  latest pose is published on ``~/rendered`` as ``sensor_msgs/Image`` (``rgb8``, the camera's frame id).

Every image becomes a frame once ``/tf`` covers its stamp (``ngp_sdk.robotics.LiveFrameAssembler``: the bag
importer's conversions, TF interpolated with slerp + lerp); frames are pushed without blocking (a busy server
drops frames instead of stalling the robot). The conversions need no ROS and are tested in
``tests/ngp_sdk/robotics/test_live.py``; this file is the thin rclpy shell around them.
"""

from __future__ import annotations

import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    try:
        import rclpy
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, QoSProfile
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
        from tf2_msgs.msg import TFMessage
    except ImportError:
        print("ros2_node.py needs a sourced ROS 2 installation (rclpy, sensor_msgs, tf2_msgs)", file=sys.stderr)
        return 2

    from bridges.client import NgpClient
    from ngp_sdk.robotics.live import LiveFrameAssembler
    from ngp_sdk.robotics.messages import image_message_fields
    from ngp_sdk.robotics.scene_box import scene_box_from_aabb

    class NgpBridgeNode(Node):
        def __init__(self) -> None:
            super().__init__("ngp_bridge")
            p = self.declare_parameter
            self.endpoint = p("endpoint", "tcp://127.0.0.1:5555").value
            topics = list(p("image_topics", ["/camera/image_raw"]).value)
            infos = list(p("camera_info_topics", [""]).value)
            infos = infos if infos and infos[0] else None
            camera_frame = p("camera_frame", "").value or None
            box = scene_box_from_aabb(list(p("aabb", [-2.0, -2.0, -2.0, 2.0, 2.0, 2.0]).value),
                                      int(p("aabb_scale", 1).value))
            self.size = (int(p("render_width", 320).value), int(p("render_height", 240).value))
            self.assembler = LiveFrameAssembler(topics, camera_info_topics=infos,
                                                world_frame=p("world_frame", "map").value, camera_frame=camera_frame)
            self.client = NgpClient(self.endpoint, timeout_s=300)
            self.client.configure(aabb_scale=box.aabb_scale, scale=box.scale, offset=box.offset)
            self.latest = None
            static_qos = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.create_subscription(TFMessage, "/tf", lambda m: self._send(self.assembler.on_tf(m)), 100)
            self.create_subscription(TFMessage, "/tf_static",
                                     lambda m: self._send(self.assembler.on_tf(m, static=True)), static_qos)
            for topic, info in self.assembler.info_topic.items():
                self.create_subscription(CameraInfo, info, lambda m, t=info: self.assembler.on_camera_info(t, m), 10)
                compressed = topic.endswith("/compressed")
                self.create_subscription(CompressedImage if compressed else Image, topic,
                                         lambda m, t=topic, c=compressed: self._send(
                                             self.assembler.on_image(t, m, compressed=c)), 10)
            self.publisher = self.create_publisher(Image, "~/rendered", 2)
            rate = float(p("render_rate", 1.0).value)
            if rate > 0:
                self.create_timer(1.0 / rate, self._render)

        def _send(self, frames) -> None:
            for f in frames:
                self.client.add_frame(f.image, f.c2w, f.intrinsics, push=True, stamp_ns=f.stamp_ns,
                                      camera_id=f.camera)
                if self.latest is None or f.camera == self.latest[0].camera:
                    self.latest = (f, f.intrinsics.resized(*self.size))

        def _render(self) -> None:
            if self.latest is None:
                return
            frame, intr = self.latest
            rgb = self.client.render(frame.c2w, intr, encoding="rgb8")
            fields = image_message_fields(np.asarray(rgb), frame.stamp_ns, self.assembler.frame_ids[frame.camera])
            msg = Image(height=fields["height"], width=fields["width"], encoding=fields["encoding"],
                        is_bigendian=fields["is_bigendian"], step=fields["step"], data=fields["data"])
            msg.header.stamp.sec, msg.header.stamp.nanosec = fields["stamp"]
            msg.header.frame_id = fields["frame_id"]
            self.publisher.publish(msg)

    rclpy.init(args=argv)
    node = NgpBridgeNode()
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.client.close()
        node.destroy_node()
        rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
